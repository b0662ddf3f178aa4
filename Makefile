# noise-exp: `make setup` once, `make demo` to run the CPU demo, `make test` for the test suite.
VENV        ?= .venv
PY          := $(VENV)/bin/python
PIP         := $(VENV)/bin/pip
# The torch/torchvision pair pip takes from local disk on the dev machines (a CUDA build that also runs
# on CPU); on your machine override it, e.g. `make setup TORCH_PINS="torch torchvision"`.
TORCH_PINS  ?= torch==2.14.1 torchvision==0.29.1
STAMP       := $(VENV)/.installed
REFERENCE   := .cache/reference
RUN         ?=
HYDRA_ARGS  ?=
# The studies (noise_exp/studies/, knobs in conf/study/<name>.yaml): `make <study> ARGS="key=value ..."`.
STUDY       := OMP_NUM_THREADS=1 $(PY) -m noise_exp.studies
ARGS        ?=

.PHONY: help setup test test-fast system-deps reference-wheels demo bench table1 table2 fig8 table3 merge \
        train-small reproduce-small human-eval slurm-up slurm-down clean-outputs \
        train-shapes-reward shapes-judge-study train-shapes shapes-accuracy reproduce-correlation reproduce-shapes \
        compare speed-study seed-share

# `make help`: every target with its `## ` note.
help: ## this list
	@grep -hE '^[a-zA-Z0-9 _-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | awk -F'\t' '{printf "  %-26s %s\n", $$1, $$2}'

setup: $(STAMP) ## the venv (.venv) with the pinned torch and the project's dev extras

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet $(TORCH_PINS)
	$(PIP) install --quiet -e ".[dev]" $(TORCH_PINS)
	touch $(STAMP)

# System packages the tests drive for real: Chromium (human-eval page) and SLURM + munge + MariaDB
# (installed by scripts/slurm_local.sh when the SLURM tests start the cluster). Needs root; skipped otherwise.
system-deps: ## Chromium (browser tests) as root; SLURM is installed by the SLURM tests
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then bash scripts/install_chromium.sh; \
	 else echo "system-deps: not root, skipping apt packages (browser/SLURM tests may skip)"; fi

# Official hpsv2 / image-reward wheels, unpacked only inside the equality tests (never installed).
reference-wheels: $(REFERENCE)/.done ## the official hpsv2 / image-reward wheels for the equality tests
$(REFERENCE)/.done: | $(STAMP)
	$(PIP) download --quiet --no-deps hpsv2==1.2.0 image-reward==1.5 -d $(REFERENCE)
	touch $@

# Two pytest-xdist workers; tests sharing one resource (the SLURM cluster, the fault matrix) carry an xdist_group mark.
TEST_WORKERS ?= 2
test: $(STAMP) reference-wheels system-deps ## the test suite (what CI runs): setup + reference wheels + system deps + pytest -n 2
	$(PY) -m pytest tests -n $(TEST_WORKERS) --dist loadgroup

test-fast: $(STAMP) ## the suite without the tests marked slow
	$(PY) -m pytest tests -m "not slow" -n $(TEST_WORKERS) --dist loadgroup

demo: $(STAMP) ## the main job offline on CPU: selection (K = 100) on 4 DrawBench prompts, tiny SDXL
	$(PY) run.py dataset.limit=4

bench: $(STAMP) ## seconds, memory and overhead per candidate (docs/benchmark.md)
	$(PY) -m noise_exp.benchmark

.PHONY: api-bench
api-bench: $(STAMP) ## nx.select vs the runner's selection and a plain pipe + DDIMInverseScheduler loop (docs/api.md)
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) -m noise_exp.api.bench

# Paper results (GPU or cluster): each ends in the merged report of the sweep folder it ran: SWEEP_DIR=, else a
# hydra.sweep.dir= in HYDRA_ARGS, else multirun/<target>. fig8's report draws Fig. 8 as curves_num_steps.png.
SWEEP_DIR ?=
sweep_dir = $(or $(SWEEP_DIR),$(patsubst hydra.sweep.dir=%,%,$(lastword $(filter hydra.sweep.dir=%,$(HYDRA_ARGS)))),multirun/$@)
table1 table2 fig8: $(STAMP) ## the paper's Table 1, Table 2, Fig. 8 as a sweep + merged report (GPU; SWEEP_DIR=, HYDRA_ARGS=)
	$(PY) run.py -m experiment=$@ $(filter-out hydra.sweep.dir=%,$(HYDRA_ARGS)) hydra.sweep.dir=$(sweep_dir)
	$(PY) -m noise_exp.merge $(sweep_dir)

ORBITS ?= datasets/omniobject3d_orbits
table3: $(STAMP) ## the paper's Table 3 (SV3D-U) on rendered orbits (ORBITS=/path)
	$(PY) run.py experiment=table3 dataset.path=$(ORBITS) $(HYDRA_ARGS)

merge: $(STAMP) ## merge a sweep's runs into one report (RUN=<sweep folder>)
	$(PY) -m noise_exp.merge $(RUN)

train-small: $(STAMP) ## train the small digits model (weights are committed)
	$(PY) -m noise_exp.training.digits

reproduce-small: $(STAMP) ## the hypothesis on the digits model (docs/small_model.md)
	$(STUDY) reproduce_small $(ARGS)

human-eval: $(STAMP) ## serve the preference / labelling page for a run (RUN=, HOST=, PORT=, TOKEN=)
	$(PY) -m noise_exp.human_eval serve $(RUN) $(if $(HOST),--host $(HOST)) $(if $(PORT),--port $(PORT)) $(if $(TOKEN),--token $(TOKEN))

slurm-up: ## start the local one-node SLURM cluster
	bash scripts/slurm_local.sh up

slurm-down: ## stop it
	bash scripts/slurm_local.sh down

clean-outputs: ## remove outputs/ and multirun/
	rm -rf outputs multirun

# The shapes world (docs/shapes_world.md): retrain the learned reward (committed; ~10 min, 1 thread), and measure
# the exact judge on clean and perturbed renders.
train-shapes-reward: $(STAMP) ## train the shapes world's learned reward (weights are committed)
	$(PY) -m noise_exp.training.shapes_reward --force

shapes-judge-study: $(STAMP) ## the exact judge on clean and perturbed renders (docs/shapes_world.md)
	$(STUDY) judge $(ARGS)

# The candidate bank study on the small digits model (docs/candidate_bank.md): K=100 scored candidates for each of the
# 100 digit prompts (a fresh seed block per prompt id), computed once per guidance scale into one bank; then stable /
# unstable / random / best-by-reward / oracle picks and the stability-quality correlation from the bank alone.
# The shapes world: its knobs are in conf/study/correlation.yaml's header.
reproduce-correlation: $(STAMP) ## s(eps) vs quality within prompts, from a candidate bank (docs/candidate_bank.md)
	$(STUDY) correlation $(ARGS)

# The two shapes-world diffusion models (docs/shapes_world.md), three stages each: the stage table is
# conf/study/train_shapes.yaml.
train-shapes: $(STAMP) ## train small_shapes and small_shapes_l, three stages (weights are committed)
	$(STUDY) train_shapes $(ARGS)

shapes-accuracy: $(STAMP) ## the judge's accuracy of both shapes models on shapes_bench
	for m in small_shapes small_shapes_l; do $(STUDY) shapes_accuracy model=$$m $(ARGS) || exit 2; done

# The hypothesis in the shapes world (docs/shapes_reproduction.md): Tables 1 and 2 analogues on small_shapes and
# small_shapes_l, judged per tag, next to the digits result.
reproduce-shapes: $(STAMP) ## Tables 1-2 analogues at d = 256 and 1,024 (docs/shapes_reproduction.md)
	$(STUDY) reproduce_shapes jobs=2 $(ARGS)

# Noise methods at equal compute (docs/compare_methods.md): select, optimize, best_of_n, reward_opt and random on
# small_shapes at budgets of 1, 4 and 16 generations, the exact judge held out.
compare: $(STAMP) ## noise methods at equal compute on small_shapes (docs/compare_methods.md)
	$(STUDY) compare doc=docs/compare_methods.md $(ARGS)

# Cheaper selection and faster optimization (docs/speed_study.md): proxies and short lists vs exact selection,
# optimizers vs the paper's 100-step SGD gain, fixed-point inversion, on small_digits and small_shapes.
speed-study: $(STAMP) ## cheap proxies, short lists and faster optimizers (docs/speed_study.md)
	$(STUDY) speed $(ARGS)

# How much of s(eps) is the seed's alone (docs/seed_share.md): the prompt x seed decomposition, a seed prior and the
# noise's norm as zero-NFE proxies, on small_digits, small_shapes, tiny_sdxl (control) and small_shapes_l at K = 100.
# 13 min of CPU on one thread (17.5 min wall at load 2-4; docs/seed_share.md); a real model on a GPU: make seed-share MODEL=sdxl_turbo
MODEL ?=
seed-share: $(STAMP) ## the seed's share of s(eps) and a seed prior (docs/seed_share.md; MODEL=)
	$(STUDY) seed_share $(if $(MODEL),"models=[$(MODEL)]" out=outputs/seed_share_$(MODEL)) $(ARGS)
