"""The benchmark scripts keep running (figures are printed by `make bench`, never asserted)."""
import os
import subprocess
import sys

from conftest import REPO


def test_core_bench_runs_on_both_interpreters():
    out = subprocess.run([sys.executable, os.path.join(REPO, "bench", "core_bench.py"), "--n", "300"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "CPython" in out.stdout and "MicroPython" in out.stdout


def test_migration_latency_bench_runs():
    out = subprocess.run([sys.executable, os.path.join(REPO, "bench", "migration_latency.py"), "--quick"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "migrate p50" in out.stdout and "migrate/floor" in out.stdout
