"""Multi-process (multi-host) Sinkhorn with ott_fast: a recipe to copy.

Each process holds its own rows of ``x`` (and all of ``y``); JAX's distributed runtime joins the processes,
the mesh spans every process's devices, and the solve is the single-device code under ``jax.jit``.

On a cluster, start one process per host (``HOST0`` is the coordinator's address, ``i`` the process id)::

    python examples/multihost.py --coordinator HOST0:1234 --num-processes N --process-id i

On one machine, ``--launch P`` starts ``P`` local processes on 127.0.0.1 (each with ``--local-devices``
simulated CPU devices, joined by gloo CPU collectives), waits for them with a timeout and cleans them up;
``--check`` makes each process also solve the same problems on one device and report the differences::

    python examples/multihost.py --launch 2 --local-devices 2 --check
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
from typing import Any

import numpy as np

N, M, D = 256, 192, 3  # one problem, x sharded along its points
B, NB, MB = 8, 48, 40  # a batch of problems, sharded along the batch axis


def problems() -> dict[str, np.ndarray]:
    """The global (float64) data every process draws identically; each then keeps only its own share."""
    rng = np.random.default_rng(0)
    return {
        "x": rng.normal(size=(N, D)),
        "y": rng.normal(size=(M, D)) + 1.0,
        "xb": rng.normal(size=(B, NB, 2)),
        "yb": rng.normal(size=(B, MB, 2)) + 1.0,
    }


def worker(coordinator: str, num_processes: int, process_id: int, check: bool) -> dict[str, Any]:
    """One process: join the others, solve sharded, and (``check``) compare with one-device solves."""
    import jax

    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU collectives across processes
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes, process_id=process_id)

    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    import ott_fast as otf

    mesh = jax.make_mesh((jax.device_count(),), ("i",), axis_types=(jax.sharding.AxisType.Auto,))
    data = problems()
    rows, bats = N // num_processes, B // num_processes
    mine = slice(process_id * rows, (process_id + 1) * rows)  # this process's rows of x
    x = jax.make_array_from_process_local_data(NamedSharding(mesh, P("i", None)), data["x"][mine], (N, D))
    y = jax.make_array_from_process_local_data(NamedSharding(mesh, P()), data["y"], (M, D))
    share = slice(process_id * bats, (process_id + 1) * bats)
    batch = NamedSharding(mesh, P("i"))
    xb = jax.make_array_from_process_local_data(batch, data["xb"][share], (B, NB, 2))
    yb = jax.make_array_from_process_local_data(batch, data["yb"][share], (B, MB, 2))

    def one(x: Any, y: Any, chunk: int | None) -> tuple:
        def cost(x: Any) -> Any:
            out = otf.sinkhorn(otf.PointCloud(x, y, epsilon=0.1, chunk_size=chunk), tol=1e-10)
            return out.reg_ot_cost, out

        (value, out), grad = jax.value_and_grad(cost, has_aux=True)(x)
        return out.f, out.g, value, grad

    def many(xb: Any, yb: Any) -> tuple:
        def cost(x: Any, y: Any) -> Any:
            return otf.sinkhorn(otf.PointCloud(x, y, epsilon=0.1), tol=1e-10, batching="parallel").reg_ot_cost

        return jax.vmap(jax.value_and_grad(cost))(xb, yb)

    results = {f"points, chunk_size={c}": jax.jit(one, static_argnums=2)(x, y, c) for c in (None, 64)}
    results["batch"] = jax.jit(many)(xb, yb)
    report: dict[str, Any] = {"process": process_id, "devices": jax.device_count(), "local": jax.local_device_count()}
    for name, outs in results.items():
        report[name] = {"local_shards": [len(o.addressable_shards) for o in outs]}
    if check:  # the same problems on this process's first device alone
        local = jax.local_devices()[0]
        ref = {
            f"points, chunk_size={c}": jax.jit(one, static_argnums=2)(
                jax.device_put(data["x"], local), jax.device_put(data["y"], local), c
            )
            for c in (None, 64)
        }
        ref["batch"] = jax.jit(many)(jax.device_put(data["xb"], local), jax.device_put(data["yb"], local))
        for name, outs in results.items():
            worst = 0.0
            for got, want in zip(outs, ref[name], strict=True):
                want = np.asarray(want)
                scale = max(float(np.max(np.abs(want))), 1e-300)
                for shard in got.addressable_shards:  # compare every block this process holds
                    diff = np.max(np.abs(np.asarray(shard.data) - want[shard.index]), initial=0.0) / scale
                    worst = max(worst, float(diff))
            report[name]["max_rel_diff"] = worst
    jax.distributed.shutdown()
    return report


def free_port() -> int:
    """A free TCP port on 127.0.0.1, chosen by the operating system."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(processes: int, local_devices: int, check: bool, timeout: float) -> list[dict[str, Any]]:
    """Starts ``processes`` local workers on a free loopback port; returns their reports (process order).

    Raises ``RuntimeError`` with the failing worker's output if any exits non-zero or the time runs out;
    every worker is killed before returning, whatever happened.
    """
    coordinator = f"127.0.0.1:{free_port()}"
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=f"--xla_force_host_platform_device_count={local_devices}")
    cmd = [sys.executable, os.path.abspath(__file__), "--coordinator", coordinator, "--num-processes", str(processes)]
    procs = [
        subprocess.Popen(
            cmd + ["--process-id", str(i)] + (["--check"] if check else []),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i in range(processes)
    ]
    try:
        outs = [p.communicate(timeout=timeout) for p in procs]
    except subprocess.TimeoutExpired as err:
        raise RuntimeError(f"multi-process run exceeded {timeout} s") from err
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    reports = []
    for i, (p, (out, err)) in enumerate(zip(procs, outs, strict=True)):
        if p.returncode != 0:
            raise RuntimeError(f"process {i} exited with {p.returncode}:\n{err[-3000:]}")
        reports.append(json.loads(out.strip().splitlines()[-1]))
    return reports


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--launch", type=int, default=0, help="start this many local processes on 127.0.0.1")
    parser.add_argument("--local-devices", type=int, default=2, help="simulated CPU devices per local process")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds before local processes are killed")
    parser.add_argument("--coordinator", help="host:port of process 0")
    parser.add_argument("--num-processes", type=int)
    parser.add_argument("--process-id", type=int)
    parser.add_argument("--check", action="store_true", help="also solve on one device and report differences")
    args = parser.parse_args(argv)
    if args.launch:
        for rep in launch(args.launch, args.local_devices, args.check, args.timeout):
            print(json.dumps(rep))
        return 0
    print(json.dumps(worker(args.coordinator, args.num_processes, args.process_id, args.check)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
