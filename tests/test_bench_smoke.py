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


def test_failover_bench_runs():
    out = subprocess.run([sys.executable, os.path.join(REPO, "bench", "failover.py"), "--trials", "2", "--heap", "128K",
                          "--frozen-trials", "1"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "kill -9 -> promoted, first event" in out.stdout and "SIGSTOP -> promoted" in out.stdout


def test_node_throughput_bench_runs():
    """Real Mosquitto, a real node and the raw MicroPython loop, a few inputs: figures printed."""
    out = subprocess.run([sys.executable, os.path.join(REPO, "bench", "node_throughput.py"), "--n", "40"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "events/s" in out.stdout and "ratio node / raw" in out.stdout


def test_migration_latency_bench_runs():
    out = subprocess.run([sys.executable, os.path.join(REPO, "bench", "migration_latency.py"), "--quick"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "migrate p50" in out.stdout and "migrate/floor" in out.stdout


def test_node_memory_bench_runs():
    """Live nodes on the node interpreter (make test32 runs this on the 32-bit port too): its
    table, the module breakdown and the summary, every figure named with its word size."""
    from netedge.tools.interpreter import label, micropython_cmd
    out = subprocess.run([sys.executable, os.path.join(REPO, "bench", "node_memory.py"), "--interpreters",
                          micropython_cmd(), "--heaps", "96K", "--daemons", "0,1", "--layout", "romfs", "--states", ""],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "per daemon" in out.stdout and "resident modules" in out.stdout and "SUMMARY" in out.stdout, out.stdout
    assert label() in out.stdout and "failed" not in out.stdout, out.stdout
