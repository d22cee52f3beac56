# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv if missing.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
RUN ?= runs/demo

.PHONY: demo test install pretrain bench

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

# Until the whole loop exists as `t2i-align demo`, the demo is generate then evaluate.
demo: $(STAMP)
	$(VENV)/bin/t2i-align generate --config configs/shapes/generate.yaml --out $(RUN)/baseline --resume
	$(VENV)/bin/t2i-align evaluate --config configs/shapes/evaluate.yaml --run $(RUN)/baseline --out $(RUN)/baseline/metrics.json --overwrite

test: $(STAMP)
	$(PY) -m pytest -q

pretrain: $(STAMP)
	$(PY) -m align.shapes.pretrain --out align/shapes/weights

bench: $(STAMP)
	$(PY) bench/generation.py
