#!/usr/bin/env bash
# Issue 21's "before/after" checks (C1-C8, C10 of the redesign plan), run into one folder.
#
#   tests/redesign_baseline/capture.sh OUT [CHECK ...]   # from the repository root; CHECK: c1 c2 c2b c3 c4 ... c10
#   python tests/redesign_baseline/compare_outputs.py tests/redesign_baseline/before OUT
#
# These were the BEFORE commands (the tree of README.md's commit). When the redesign changes a command (a module
# renamed), edit it here so that it expresses THE SAME parameters (prompts, seeds, steps, models, proxies, ...), and
# say so in the commit message. One torch thread, always. c1-c3 moved in S8 from scripts/reproduce_shapes.py --quick,
# scripts/speed_study.py and scripts/compare_methods.py (same flags) to `python -m noise_exp.studies`.
# OUT must be new (or hold only earlier checks of the same capture): run.py and the studies resume what a folder holds.
set -euo pipefail
OUT=${1:?usage: capture.sh OUT [CHECK ...]}
shift
CHECKS=${*:-c1 c2 c2b c3 c4 c5 c6 c7 c8 c10}
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONPATH=$PWD
if [ $# -eq 0 ] && [ -e "$OUT" ] && [ -n "$(ls -A "$OUT")" ]; then
    echo "error: $OUT is not empty: the runs would resume what it holds; capture into a new folder"; exit 2
fi
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
RUN=("$PY" run.py model=small_shapes dataset=shapes_bench)

# The run's one-line summary ("noise-exp: N prompts ... | mean stability ..."), its seconds dropped.
summary_line() { grep '^noise-exp:' "$1" | sed -E 's/ in [0-9.]+s / /' > "$2"; }

timed() {  # timed NAME COMMAND...: the check's log in OUT/logs/NAME.log, its wall seconds in OUT/logs/times.tsv
    local name=$1 start=$SECONDS
    shift
    mkdir -p "$OUT/logs"
    echo "== $name: $*"
    if ! "$@" > "$OUT/logs/$name.log" 2>&1; then
        tail -5 "$OUT/logs/$name.log"
        echo "error: $name failed; see $OUT/logs/$name.log"
        exit 2
    fi
    printf '%s\t%s\n' "$name" $((SECONDS - start)) >> "$OUT/logs/times.tsv"
}

for check in $CHECKS; do
    case $check in
    c1) timed c1 "$PY" -m noise_exp.studies reproduce_shapes quick=true "out=$OUT/reproduce_shapes" threads=1 ;;
    c2) timed c2 "$PY" -m noise_exp.studies speed "models=[small_digits]" prompts=2 seeds=4 "shortlists=[1,4]" \
            "proxies=[partial:1,steps:2,norm,lowfreq:2]" "parts=[selection,inversion]" inversion_seeds=2 \
            "out=$OUT/speed" threads=1 ;;
    c2b) timed c2b "$PY" -m noise_exp.studies speed "models=[small_digits]" "parts=[optimization]" opt_prompts=1 \
            "optimizers=[sgd,adam]" "out=$OUT/speed_opt" threads=1 ;;
    c3) timed c3 "$PY" -m noise_exp.studies compare prompts=2 "ladder=[1,4]" "out=$OUT/compare" ;;
    c4) timed c4 "${RUN[@]}" dataset.limit=6 method=select method.num_seeds=8 \
            "evaluator=[shapes_geneval,shapes_reward]" "hydra.run.dir=$OUT/select_small_shapes"
        summary_line "$OUT/logs/c4.log" "$OUT/select_small_shapes/summary_line.txt" ;;
    c5) timed c5 "${RUN[@]}" dataset.limit=3 method=optimize method.steps=3 "evaluator=[shapes_geneval]" \
            "hydra.run.dir=$OUT/optimize_small_shapes"
        summary_line "$OUT/logs/c5.log" "$OUT/optimize_small_shapes/summary_line.txt" ;;
    c6) timed c6_best_of_n "${RUN[@]}" dataset.limit=2 "evaluator=[shapes_geneval]" method=best_of_n \
            method.verifier=shapes_reward method.num_seeds=4 "hydra.run.dir=$OUT/best_of_n_small_shapes"
        timed c6_reward_opt "${RUN[@]}" dataset.limit=2 "evaluator=[shapes_geneval]" method=reward_opt \
            method.verifier=shapes_reward method.steps=1 "hydra.run.dir=$OUT/reward_opt_small_shapes"
        timed c6_random "${RUN[@]}" dataset.limit=2 "evaluator=[shapes_geneval]" method=random method.num_seeds=4 \
            "hydra.run.dir=$OUT/random_small_shapes" ;;
    c7) timed c7_run "$PY" run.py model=small_digits dataset=digits dataset.limit=3 method=select method.num_seeds=4 \
            method.score_candidates=true "evaluator=[digit_classifier]" "bank.path=$OUT/bank" \
            "hydra.run.dir=$OUT/bank_run"
        timed c7_select "$PY" -m noise_exp.bank select "$OUT/bank_run" --by stability --by unstable --by random \
            --by digit_classifier --out "$OUT/bank_rules" ;;
    c8) mkdir -p "$OUT/configs"; timed c8 "$PY" tests/redesign_baseline/dump_configs.py "$OUT/configs/configs.json" ;;
    c10) timed c10 "$PY" -c "
import sys
from pathlib import Path
from noise_exp.human_eval.pairs import build_pairs, annotator_sequence
with open(sys.argv[1], 'w') as out:
    for d in ('select_small_shapes', 'optimize_small_shapes', 'compare'):
        ps = build_pairs(Path(sys.argv[2]) / d)
        print(d, [p.pair_id for p in ps.pairs], [p.pair_id for p in annotator_sequence('alice', ps.pairs)], file=out)
" "$OUT/pairs.txt" "$OUT" ;;
    *) echo "error: unknown check $check (c1 c2 c2b c3 c4 c5 c6 c7 c8 c10)"; exit 2 ;;
    esac
done
echo "captured into $OUT"
