"""``python -m benchmarks.memory``: the compiled temporary memory of solves and derived values against the
formulas their docstrings state.

Each case is compiled, not run (``jax.jit(f).lower(...).compile().memory_analysis()``): the temporaries are
what XLA allocates besides the inputs and outputs, the same on every CPU. The documented formulas:

- dense (``Geometry``, ``DenseKernel``): up to ``4 n m`` entries when ``n m <= 2**20`` (``C^T``, the
  library fusion's operands and Sinkhorn's Gibbs kernel); otherwise at most five row blocks of
  ``k m <= 2**20`` entries (the matrix is read in place), plus the Gibbs kernel (``n m``) up to ``2**22``;
- online (``PointCloud(chunk_size="auto")``): one chunk of ``k`` rows, ``k = min(n, max(512, 2**23 // m))``
  rounded to 64, i.e. ``k m`` entries;
- the divergence: the largest chunk of its three solves (``x``-``y``, ``x``-``x``, ``y``-``y``), each sized
  for its own shape;
- the entropic map of a cost other than squared Euclidean: ``[block, m, d]`` gradients with
  ``block m d <= 2**21`` entries, about three such buffers at once.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

import ott_fast as otf
from benchmarks import cli

MB = 2**20


def temp_bytes(fun: Callable, *shapes: tuple[int, ...]) -> int:
    """Temporary bytes of ``fun`` compiled for float32 arguments of ``shapes``."""
    args = [jax.ShapeDtypeStruct(s, jnp.float32) for s in shapes]
    return jax.jit(fun).lower(*args).compile().memory_analysis().temp_size_in_bytes


def chunk_rows(n: int, m: int) -> int:
    return min(n, max(512, ((1 << 23) // m) // 64 * 64))


def dense(n: int, m: int) -> tuple[str, float, float]:
    temp = temp_bytes(lambda c: otf.sinkhorn(otf.Geometry(c, epsilon=0.05)).reg_ot_cost, (n, m))
    formula = 4 * n * m if n * m <= 1 << 20 else 5 * (1 << 20) + (n * m if n * m <= 1 << 22 else 0)
    return f"dense {n} x {m}", 4 * n * m, temp, 4 * formula


def online(n: int, m: int, d: int = 3) -> tuple[str, float, float]:
    fun = lambda x, y: otf.sinkhorn(otf.PointCloud(x, y, epsilon=0.1, chunk_size="auto")).reg_ot_cost  # noqa: E731
    return f"online {n} x {m}, d={d}", 4 * n * m, temp_bytes(fun, (n, d), (m, d)), 4 * chunk_rows(n, m) * m


def divergence(n: int, m: int, d: int = 3) -> tuple[str, float, float]:
    fun = lambda x, y: otf.sinkhorn_divergence(x, y, epsilon=0.1, chunk_size="auto")  # noqa: E731
    chunks = max(chunk_rows(p, q) * q for p, q in ((n, m), (n, n), (m, m)))
    return f"divergence {n} x {m}, d={d}", 4 * n * m, temp_bytes(fun, (n, d), (m, d)), 4 * chunks


def entropic_map(k: int, m: int, d: int) -> tuple[str, float, float]:
    y = jnp.zeros((m, d), jnp.float32)
    t = otf.EntropicMap(y, jnp.zeros(m), jnp.zeros(m), jnp.ones(()), otf.costs.PNorm(1.5), jnp.array(True))
    formula = 4 * max(3 * t.block_size * m * d, k * d)
    return f"entropic map (p-norm) {k} queries, m={m}, d={d}", 4 * k * m, temp_bytes(t.__call__, (k, d)), formula


def main(argv: list[str] | None = None) -> int:
    args = cli.parser("python -m benchmarks.memory", __doc__, "smaller shapes", progress=False).parse_args(argv)
    scale = 4 if args.quick else 1
    cases = [
        lambda: dense(1000, 1000),
        lambda: dense(2000 // scale, 2000 // scale),
        lambda: dense(10007 // scale, 2000),
        lambda: online(20000 // scale, 20000 // scale),
        lambda: divergence(20000 // scale, 500),
        lambda: entropic_map(5000, 4000 // scale, 16),
    ]
    print("| case | n m entries (MB) | compiled temporaries (MB) | documented formula (MB) | ratio |")
    print("| --- | --- | --- | --- | --- |")
    for case in cases:
        name, matrix, temp, formula = case()
        print(f"| {name} | {matrix / MB:.1f} | {temp / MB:.1f} | {formula / MB:.1f} | {temp / formula:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
