"""The numbers tuned for a backend, in one table per backend, each with the benchmark that sets it.

The code reads them through :func:`tuning` (at trace time: the backend of the default device). CPU values
were measured on a 2-core x86 CPU; the GPU/TPU table is a copy of the CPU one, marked unmeasured, until a
device benchmark sets it (``python -m benchmarks.device``). What was tried on the way to these values is in
the changelog and on the benchmarks page, not here.

Example:
    >>> tuning("cpu").block_entries
    1048576
"""

from __future__ import annotations

from typing import NamedTuple

import jax

__all__ = ["Tuning", "tuning", "CPU", "ACCELERATOR"]


class Tuning(NamedTuple):
    """One backend's tuned constants.

    Attributes:
        block_entries: entries of a row block of a stored cost matrix, the unit every sweep reads in place
            (``geometry.DenseKernel``; a block stays in cache while it is read). Set by ``python -m
            benchmarks`` (sinkhorn suite, dense problems up to n = 4000).
        dense_max_entries: ``PointCloud(chunk_size=None)`` goes online beyond this many cost entries (1 GiB of
            float32): a memory limit, not a speed one.
        gibbs_max_entries: Sinkhorn's blocks at the target epsilon sweep a Gibbs kernel (one more ``[n, m]``
            buffer, ``geometry.GibbsKernel``) for stored matrices up to this many entries (16 MB of float32).
            A product with it beat the ``exp`` sweeps about 3x per iteration at 1000 x 1000 and 2000 x 2000
            and 4x at 4000 x 4000. Set by memory, not speed: beyond it a solve keeps to five row blocks
            (``DenseKernel``). Measured with the dense problems of ``python -m benchmarks --suites sinkhorn``.
        gibbs_min_block: the fewest iterations per block (``check_every``) for which Sinkhorn builds the Gibbs
            kernel. At ``check_every=2`` (what ``flow_matching_pairs`` uses) the coupling at n = 1024, d = 64
            took 17 ms with it and 14 ms without: the solve alone gained (11.5 -> 8.8 ms), the sampling and
            cost passes after it lost more (XLA kept the cost matrix and its transpose once more; not
            resolved). The default, 4, keeps that case on the exact sweeps and the solver's default block (5) on
            the Gibbs kernel, measured by the Sinkhorn and divergence suites.
        online_chunk_entries: entries per chunk of an online geometry (``chunk_size="auto"``), large enough for
            the chunk's matrix product to run at BLAS speed. Set by ``python -m benchmarks.online``.
        online_min_rows: the fewest rows of an ``"auto"`` chunk (the scan's per-step overhead dominated below
            it at m = 50,000, d = 64). Set by ``python -m benchmarks.online``.
        sequential_min_entries: ``batching="auto"`` loops over the members of a vmapped batch from this many
            cost entries per problem on CPU (``driver.batched_mode``). Set by ``python -m benchmarks.batches``.
        chunk_entries: cost entries per chunk of a ``"chunked"`` batch (``driver.chunk_members``). Set by
            ``python -m benchmarks.batches``.
        whole_chunks: a batch of at most this many chunks' worth runs whole (``driver.in_chunks``). Set by
            ``python -m benchmarks.batches``.
        groups: groups per lane of a batched ``while_loop`` (``driver.while_loop``): finer skips finished
            members sooner, coarser vectorises better. Set by ``python -m benchmarks.batches``.
        measured: whether these values were measured on this backend.
    """

    block_entries: int
    dense_max_entries: int
    gibbs_max_entries: int
    gibbs_min_block: int
    online_chunk_entries: int
    online_min_rows: int
    sequential_min_entries: int
    chunk_entries: int
    whole_chunks: int
    groups: int
    measured: bool


CPU = Tuning(
    block_entries=1 << 20,
    dense_max_entries=1 << 28,
    gibbs_max_entries=1 << 22,
    gibbs_min_block=4,
    online_chunk_entries=1 << 23,
    online_min_rows=512,
    sequential_min_entries=1 << 16,
    chunk_entries=1 << 20,
    whole_chunks=4,
    groups=8,
    measured=True,
)

# GPU and TPU: not measured yet; the CPU values stand in (the batching rules that are CPU-only do not apply).
ACCELERATOR = CPU._replace(measured=False)


def tuning(backend: str | None = None) -> Tuning:
    """The table of ``backend`` (``"cpu"``, ``"gpu"``, ``"tpu"``; ``None``: the default device's).

    Args:
        backend: a JAX backend name, or ``None``.

    Example:
        >>> tuning("gpu").measured
        False
    """
    backend = jax.default_backend() if backend is None else backend
    return CPU if backend == "cpu" else ACCELERATOR
