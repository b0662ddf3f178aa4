"""`make bench`: print and write the cost figures of noise selection and optimization (see noise_exp/benchmark.py)."""
import sys

from noise_exp.benchmark import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
