"""Sharded solves equal single-device ones (4 simulated CPU devices, float64), without gathering the costs."""

import textwrap

from conftest import run_on_devices

# Where each all-reduce of a compiled program runs: ``{"shape depth": count}``, the depth being the number of
# while loops around it (ENTRY = 0). A solve is: the checks' while loop (1), each check's iterations (2), and
# the chunk loops of a sweep (3): an all-reduce at depth 3 runs once per chunk of every sweep.
_LOOP_DEPTHS = r"""
def allreduce_depths(hlo):
    import collections, re
    comps, name, entry = {}, None, None
    for line in hlo.splitlines():
        head = re.match(r"^(ENTRY )?%?([\w.\-]+) .*\{\s*$", line)
        if head:
            name = head.group(2)
            comps[name] = []
            entry = name if head.group(1) else entry
        elif name is not None:
            comps[name].append(line)
    kids = collections.defaultdict(list)
    for c, lines in comps.items():
        for ln in lines:
            w = re.search(r"\bwhile\(.*condition=%?([\w.\-]+), body=%?([\w.\-]+)", ln)
            if w:
                kids[c] += [(w.group(1), 1), (w.group(2), 1)]
                continue
            for t in re.findall(r"(?:to_apply|calls|true_computation|false_computation)=%?([\w.\-]+)", ln):
                kids[c].append((t, 0))
            for br in re.findall(r"branch_computations=\{([^}]*)\}", ln):
                kids[c] += [(t.strip().lstrip("%"), 0) for t in br.split(",")]
    depth = {}
    def visit(c, d):
        if depth.get(c, -1) >= d:
            return
        depth[c] = d
        for k, inc in kids[c]:
            visit(k, d + inc)
    visit(entry, 0)
    out = collections.Counter()
    for c, lines in comps.items():
        for ln in lines:
            m = re.search(r"= (\S+) all-reduce(?:-start)?\(", ln)
            if m:
                out[re.sub(r"\{.*\}", "", m.group(1)) + " " + str(depth.get(c, -1))] += 1
    return dict(out)
"""

_SCRIPT = _LOOP_DEPTHS + textwrap.dedent(
    """
    import json, re
    import jax, jax.numpy as jnp, numpy as np
    jax.config.update("jax_enable_x64", True)
    import ott_fast as otf
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

    mesh = Mesh(np.array(jax.devices()), ("d",))
    rng = np.random.default_rng(0)
    report = {"devices": len(jax.devices())}

    def collectives(fn, *args, hlo=None):
        hlo = fn.lower(*args).compile().as_text() if hlo is None else hlo
        return re.findall(r"= (\\S+) (all-gather|all-to-all|all-reduce|reduce-scatter|collective-permute)\\(", hlo)

    # (b) one problem, x sharded along its points: dense (blocked column sweep) and online
    x, y = rng.normal(size=(1024, 3)), rng.normal(size=(800, 3)) + 1.0
    xs = jax.device_put(x, NamedSharding(mesh, P("d", None)))
    ys = jax.device_put(y, NamedSharding(mesh, P()))
    for chunk in (None, 128):
        def solve(x, y, chunk=chunk):
            out = otf.sinkhorn(otf.PointCloud(x, y, epsilon=0.1, chunk_size=chunk), tol=1e-10)
            return out.f, out.g, out.reg_ot_cost, out.transport_cost
        single = jax.jit(solve)(x, y)
        fn = jax.jit(solve)
        sharded = fn(xs, ys)
        hlo = fn.lower(xs, ys).compile().as_text()
        rel = max(float(jnp.max(jnp.abs(s - r)) / jnp.max(jnp.abs(r))) for s, r in zip(sharded, single))
        grad = jax.jit(jax.grad(lambda x: solve(x, ys)[2]))
        g_rel = float(jnp.max(jnp.abs(grad(xs) - jax.grad(lambda x: solve(x, y)[2])(x))))
        report[f"rows_{chunk}"] = {
            "rel": rel, "grad_abs": g_rel, "f_sharded": sharded[0].sharding.spec == P("d"),
            "collectives": sorted(set(c[1] + " " + c[0] for c in collectives(fn, hlo=hlo))),
            "allreduce_depths": allreduce_depths(hlo),
        }

    # (c) the same problem on a mesh with Explicit axes (jax.make_mesh's default): the same results
    emesh = jax.make_mesh((4,), ("d",))
    xe = jax.device_put(x, NamedSharding(emesh, P("d", None)))
    ye = jax.device_put(y, NamedSharding(emesh, P()))
    for chunk in (None, 128):
        def solve(x, y, chunk=chunk):
            out = otf.sinkhorn(otf.PointCloud(x, y, epsilon=0.1, chunk_size=chunk), tol=1e-10)
            return out.f, out.reg_ot_cost
        ref = jax.jit(solve)(x, y)
        got = jax.jit(solve)(xe, ye)
        g_ref = jax.grad(lambda x: solve(x, y)[1])(x)
        g_got = jax.jit(jax.grad(lambda x: solve(x, ye)[1]))(xe)
        report[f"explicit_{chunk}"] = {
            "rel": max(float(jnp.max(jnp.abs(s - r)) / jnp.max(jnp.abs(r))) for s, r in zip(got, ref)),
            "grad_abs": float(jnp.max(jnp.abs(g_got - g_ref))),
            "f_spec": str(jax.typeof(got[0]).sharding.spec),
        }

    # (a) a batch of problems sharded along the batch axis
    xb, yb = rng.normal(size=(8, 200, 2)), rng.normal(size=(8, 150, 2)) + 1.0
    def cost(x, y):
        return otf.sinkhorn(otf.PointCloud(x, y, epsilon=0.1), tol=1e-10, batching="parallel").reg_ot_cost
    ref = np.array([jax.jit(cost)(xb[i], yb[i]) for i in range(8)])
    shard = NamedSharding(mesh, P("d"))
    fn = jax.jit(jax.vmap(cost))
    out = fn(jax.device_put(xb, shard), jax.device_put(yb, shard))
    report["batch"] = {
        "rel": float(np.max(np.abs(np.asarray(out) / ref - 1))),
        "collectives": sorted(set(c[1] + " " + c[0] for c in collectives(fn, jax.device_put(xb, shard),
                                                                         jax.device_put(yb, shard)))),
    }
    # (d) a vmapped batch sharded on Explicit axes: JAX's while_loop batching fails; the error says what to pass
    try:
        jax.jit(fn)(jax.device_put(xb, NamedSharding(emesh, P("d"))), jax.device_put(yb, NamedSharding(emesh, P("d"))))
        report["explicit_batch"] = "no error"
    except ValueError as err:
        report["explicit_batch"] = str(err)
    print(json.dumps(report))
    """
)


def test_sharded_equals_single_device_and_never_gathers():
    rep = run_on_devices(_SCRIPT, 4)
    assert rep["devices"] == 4
    for key in ("rows_None", "rows_128"):
        r = rep[key]
        assert r["rel"] < 1e-10 and r["grad_abs"] < 1e-10, (key, r)
        assert r["f_sharded"], (key, r)
        # Only reductions of column sums, scalars and x's mean (the centring shift, [d]): no device gathers
        # x, the potentials or the costs.
        assert r["collectives"] and all(c.startswith("all-reduce") for c in r["collectives"]), (key, r)
        assert all("800" in c or "[]" in c or "[3]" in c for c in r["collectives"]), (key, r)
        # One [m] all-reduce per iteration (the column sweep's, after its chunk loop: depth 2), one scalar per
        # check (depth 1), nothing inside a chunk loop (depth 3). The rest (depth 0) is the first iteration's
        # and the final check's exact sweeps and the centring shift. Before: one [m] all-reduce per chunk.
        depths = r["allreduce_depths"]
        in_loops = {k: v for k, v in depths.items() if not k.endswith(" 0")}
        if key == "rows_128":
            assert in_loops == {"f64[800] 2": 1, "f64[] 1": 1}, (key, depths)
        else:
            # The stored matrix (one block) is swept through the Gibbs kernel at the target epsilon: its column
            # product, its exact fallback and the exact sweep while epsilon decays each hold the [m]
            # all-reduce (one of them runs per sweep), and its check adds one scalar per iteration.
            assert in_loops == {"f64[800] 2": 3, "f64[] 2": 1, "f64[] 1": 1}, (key, depths)
    for key in ("explicit_None", "explicit_128"):
        r = rep[key]
        assert r["rel"] < 1e-10 and r["grad_abs"] < 1e-10 and r["f_spec"] == "P('d',)", (key, r)
    assert "AxisType.Auto" in rep["explicit_batch"] and "Explicit axes" in rep["explicit_batch"], rep["explicit_batch"]
    assert rep["batch"]["rel"] < 1e-10, rep["batch"]
    assert not any(c.startswith("all-gather") for c in rep["batch"]["collectives"]), rep["batch"]


_BITS = textwrap.dedent(
    """
    import hashlib, json, jax, jax.numpy as jnp, numpy as np
    import ott_fast as otf
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(1024, 3)), jnp.float32)
    y = jnp.asarray(rng.normal(size=(800, 3)) + 1.0, jnp.float32)
    h = hashlib.sha256()
    for chunk in (None, 128):
        out = jax.jit(lambda x, y: otf.sinkhorn(otf.PointCloud(x, y, epsilon=0.05, chunk_size=chunk)))(x, y)
        for a in (out.f, out.g, out.reg_ot_cost):
            h.update(np.asarray(a).tobytes())
    print(json.dumps({"devices": len(jax.devices()), "digest": h.hexdigest()}))
    """
)


def test_unsharded_solve_gives_the_same_bits_on_every_host():
    """An unsharded solve sums in an order that does not depend on how many devices the host has. Before, the
    sweeps grouped their column sums by ``jax.device_count()``, so the 1- and 8-device hashes differed."""
    digests = {count: run_on_devices(_BITS, count) for count in (1, 8)}
    assert digests[1]["devices"] == 1 and digests[8]["devices"] == 8, digests
    assert digests[1]["digest"] == digests[8]["digest"], digests
