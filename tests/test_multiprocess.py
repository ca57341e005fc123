"""Two processes x two CPU devices joined by JAX's distributed runtime (loopback coordinator, gloo CPU
collectives) give the single-process results to 1e-10 in float64, gradients included: one problem with ``x``
sharded along its points over the 4 devices (dense and online), and a batch sharded along the batch axis.

The processes run ``examples/multihost.py``, the recipe the README documents, with ``--check``: each solves
the same problems on one of its own devices alone and compares every block of the global results it holds.
"""

import importlib.util
import os

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _example():
    spec = importlib.util.spec_from_file_location("multihost", os.path.join(_ROOT, "examples", "multihost.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_two_processes_equal_one_process(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (_ROOT, os.environ.get("PYTHONPATH")) if p))
    reports = _example().launch(processes=2, local_devices=2, check=True, timeout=240)
    assert [r["process"] for r in reports] == [0, 1]
    for rep in reports:
        assert rep["devices"] == 4 and rep["local"] == 2, rep
        for name in ("points, chunk_size=None", "points, chunk_size=64", "batch"):
            r = rep[name]
            assert r["max_rel_diff"] < 1e-10, (name, rep)
            assert all(k == 2 for k in r["local_shards"]), (name, rep)  # each process holds its 2 devices' blocks
