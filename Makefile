# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv if missing;
# `make test` also installs Debian's chromium for the browser tests (scripts/ensure-chromium).
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CLI := $(VENV)/bin/t2i-align
RUN ?= runs/demo

.PHONY: demo baseline test install constraints pretrain benchmarks

install: $(STAMP)

# Exact versions from constraints.txt, the set the results were measured with; `make constraints`
# rewrites it from .venv after a deliberate upgrade.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

constraints: $(STAMP)
	$(PY) -m pip freeze --exclude-editable > constraints.txt

# The whole loop on the shapes world (README: how long it takes); a rerun reuses finished stages.
demo: $(STAMP)
	$(CLI) demo --out $(RUN)

# The shipped pipeline's baseline alignment per category and split; reruns reuse images and metrics.
BASE ?= runs/baseline
baseline: $(STAMP)
	$(CLI) generate --out $(BASE)/train --resume prompts=train images_per_prompt=2 seed=0
	test -f $(BASE)/train/metrics.json || $(CLI) evaluate --run $(BASE)/train
	$(CLI) generate --out $(BASE)/heldout --resume prompts=heldout images_per_prompt=5 seed=1000
	test -f $(BASE)/heldout/metrics.json || $(CLI) evaluate --run $(BASE)/heldout
	$(PY) -m align.evaluation.baseline_table $(BASE)/train/metrics.json $(BASE)/heldout/metrics.json

# Two pytest-xdist workers, a whole test file each (tests/conftest.py gives each its share of the cores).
test: $(STAMP)
	scripts/ensure-chromium
	$(PY) -m pytest -q -n 2 --dist loadfile

pretrain: $(STAMP)
	$(PY) -m align.shapes.pretrain --out align/shapes/weights --captions configs/shapes/captions.yaml

# The speed benchmarks that need no inputs, each a ratio against its baseline from one run;
# embedding_cache.py and ddpo_vs_trl.py read a demo run, sd15_speed.py needs a GPU (see README).
benchmarks: $(STAMP)
	$(PY) benchmarks/generation.py
	$(PY) benchmarks/labeling_latency.py
