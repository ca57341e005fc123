"""What every suite's command line shares: its common arguments, the run's metadata and its JSON record.

Each suite (``python -m benchmarks.<suite>``) adds its own arguments to :func:`parser` and stores
``{"meta": run_meta(...), ...}`` with :func:`write_record`, so that every JSON file names the machine, the
backend and the library versions the same way (``benchmarks.report`` reads them back for the page).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from typing import Any

import jax


def parser(prog: str, doc: str | None, quick_help: str, progress: bool = True) -> argparse.ArgumentParser:
    """An argument parser with ``--quick``, ``--out`` (default ``out``) and, if ``progress``, ``--no-progress``.

    Example:
        >>> args = parser("python -m benchmarks.x", "Times x.", "small sizes").parse_args(["--quick"])
        >>> args.quick, args.out, args.progress
        (True, 'out', True)
    """
    p = argparse.ArgumentParser(prog=prog, description=(doc or "").strip().splitlines()[0] if doc else None)
    p.add_argument("--quick", action="store_true", help=quick_help)
    p.add_argument("--out", default="out", help="output folder for the JSON record and the plots")
    if progress:
        p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    return p


def _version(module: str) -> str | None:
    try:
        return __import__(module).__version__
    except ImportError:
        return None


def run_meta(quick: bool, t0: float, **extra: Any) -> dict[str, Any]:
    """The run's metadata: mode, machine, CPU count, JAX backend, versions (JAX, OTT-JAX and POT where
    installed, Python), seconds since ``t0`` (``time.time()`` at the start), and ``extra``.

    Example:
        >>> import time
        >>> meta = run_meta(True, time.time(), tol=1e-3)
        >>> meta["mode"], meta["tol"], "jax" in meta["versions"]
        ('quick', 0.001, True)
    """
    versions = {"jax": jax.__version__, "ott-jax": _version("ott"), "pot": _version("ot")}
    versions = {k: v for k, v in versions.items() if v is not None} | {"python": sys.version.split()[0]}
    return {
        "mode": "quick" if quick else "full",
        "machine": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "jax_backend": jax.default_backend(),
        "versions": versions,
        **extra,
        "wall_seconds": time.time() - t0,
    }


def write_record(out: str, name: str, record: dict[str, Any]) -> str:
    """Writes ``record`` as ``<out>/<name>`` (indented JSON) and returns the path."""
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, name)
    with open(path, "w") as fh:
        json.dump(record, fh, indent=1)
    return path
