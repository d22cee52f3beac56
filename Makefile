# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv if missing.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CLI := $(VENV)/bin/t2i-align
RUN ?= runs/demo

.PHONY: demo test install pretrain bench

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

# Until the whole loop exists as `t2i-align demo`, the demo is the baseline measurement:
# generate from the shipped tiny pipeline on training and held-out prompts, then evaluate.
# Reruns reuse finished images and metrics.
demo: $(STAMP)
	$(CLI) generate --out $(RUN)/baseline-train --resume prompts=train images_per_prompt=2 seed=0
	test -f $(RUN)/baseline-train/metrics.json || $(CLI) evaluate --run $(RUN)/baseline-train
	$(CLI) generate --out $(RUN)/baseline-heldout --resume prompts=heldout images_per_prompt=5 seed=1000
	test -f $(RUN)/baseline-heldout/metrics.json || $(CLI) evaluate --run $(RUN)/baseline-heldout
	$(PY) -m align.baseline_table $(RUN)/baseline-train/metrics.json $(RUN)/baseline-heldout/metrics.json

test: $(STAMP)
	$(PY) -m pytest -q

pretrain: $(STAMP)
	$(PY) -m align.shapes.pretrain --out align/shapes/weights

bench: $(STAMP)
	$(PY) bench/generation.py
