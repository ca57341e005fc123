"""Pairs drawn from a sharded solve equal those of the single-device one (4 simulated CPU devices, float64)."""

import textwrap

from conftest import run_on_devices

# The uniform of draw s is uniform(fold_in(key, s)): it does not depend on how the points are laid out, so with
# the same key the draws of a solve sharded along x's points are the single-device draws, index for index (the
# potentials agree to rounding, far below the distance from a uniform to the nearest step of its row's CDF).
_SCRIPT = textwrap.dedent(
    """
    import json
    import jax, jax.numpy as jnp, numpy as np
    jax.config.update("jax_enable_x64", True)
    import ott_fast as otf
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

    mesh = Mesh(np.array(jax.devices()), ("d",))
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(512, 3)), rng.normal(size=(384, 3)) + 1.0
    xs = jax.device_put(x, NamedSharding(mesh, P("d", None)))
    key = jax.random.PRNGKey(7)
    report = {"devices": len(jax.devices())}
    for chunk in (None, 128):
        def pairs(x, y, key, chunk=chunk):
            out = otf.sinkhorn(otf.PointCloud(x, y, epsilon=0.5, chunk_size=chunk), tol=1e-9)
            cond, arg = otf.sample_conditional(key, out), otf.argmax_coupling(out)
            joint = otf.sample_joint(key, out, 200)
            ok = out.converged & cond.valid & arg.valid & joint.valid
            return {"cond": cond.cols, "arg": arg.cols, "joint_rows": joint.rows, "joint_cols": joint.cols, "ok": ok,
                    "f": out.f}
        fn = jax.jit(pairs)
        ref, got = fn(x, y, key), fn(xs, y, key)
        report[str(chunk)] = {
            "ok": bool(ref["ok"]) and bool(got["ok"]),
            "f_sharded": got["f"].sharding.spec == P("d"),
            "f_rel": float(jnp.max(jnp.abs(got["f"] - ref["f"])) / jnp.max(jnp.abs(ref["f"]))),
            "mismatches": {k: int(np.sum(np.asarray(got[k]) != np.asarray(ref[k])))
                           for k in ("cond", "arg", "joint_rows", "joint_cols")},
            "noisy_rows": int(np.sum(np.asarray(ref["cond"]) != np.asarray(ref["arg"]))),
            "cond": np.asarray(ref["cond"]).tolist(),
        }
    print(json.dumps(report))
    """
)


def test_sharded_solve_draws_the_same_pairs_as_one_device():
    rep = run_on_devices(_SCRIPT, 4)
    assert rep["devices"] == 4
    for chunk in ("None", "128"):  # dense, online
        r = rep[chunk]
        assert r["ok"] and r["f_sharded"] and r["f_rel"] < 1e-10, (chunk, r)
        assert r["mismatches"] == {"cond": 0, "arg": 0, "joint_rows": 0, "joint_cols": 0}, (chunk, r["mismatches"])
        assert r["noisy_rows"] > 50, (chunk, r["noisy_rows"])  # the noise decides many rows: the draws are tested
    # dense and online draws agree too (same key, costs equal up to rounding)
    same = sum(a == b for a, b in zip(rep["None"]["cond"], rep["128"]["cond"]))
    assert same >= 0.99 * len(rep["None"]["cond"]), same
