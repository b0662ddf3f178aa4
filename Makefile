# noise-exp: one command to set up, one to run the demo, one to test.
VENV        ?= .venv
PY          := $(VENV)/bin/python
PIP         := $(VENV)/bin/pip
# torch/torchvision pair that pip takes from local disk on the dev machines; override on yours.
TORCH_PINS  ?= torch==2.14.1 torchvision==0.29.1
STAMP       := $(VENV)/.installed

.PHONY: setup test demo clean-outputs

setup: $(STAMP)

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet $(TORCH_PINS)
	$(PIP) install --quiet -e ".[dev]" $(TORCH_PINS)
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest tests

demo: $(STAMP)
	$(PY) run.py

clean-outputs:
	rm -rf outputs multirun
