"""``python -m benchmarks.mesh_deformation [--size full|medium|small] [--out out]``: the mesh-deformation results.

Executes ``examples/mesh_deformation.ipynb`` top to bottom at the chosen size (``OTT_FAST_MESH_SIZE``; ``full`` by
default: 600 training steps of each loss on 5,000 sampled points, and the seconds-per-step curve from 1,000 to
100,000 points), saves the executed notebook as ``<out>/mesh_deformation.ipynb`` and prints the tables it produced,
which are the README's "Meshes" results. ``--size medium`` is a shorter check of the same code.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

import nbclient
import nbformat

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "mesh_deformation.ipynb"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=["full", "medium", "small"], default="full")
    parser.add_argument("--out", default="out")
    args = parser.parse_args(argv)
    os.environ.pop("OTT_FAST_SMALL", None)
    os.environ["OTT_FAST_MESH_SIZE"] = args.size
    os.environ.setdefault("MPLBACKEND", "Agg")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    start = time.perf_counter()
    resources = {"metadata": {"path": str(ROOT)}}
    client = nbclient.NotebookClient(nb, timeout=None, kernel_name="python3", resources=resources)
    client.execute()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out / "mesh_deformation.ipynb")
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            if o.get("output_type") == "stream" and o.get("name") == "stdout":
                sys.stdout.write(o["text"] + "\n")
    took = time.perf_counter() - start
    print(f"[{args.size} run: {took:.0f} s; executed notebook in {out / 'mesh_deformation.ipynb'}]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
