"""Every matrix product carries an explicit precision, read from the lowered program (StableHLO text).

On GPUs JAX's default float32 matmul precision may be TF32; ott_fast must not depend on it. So every
``dot_general`` in a solve, its gradient (the implicit backward pass) and the derived quantities states its
precision: the cost's (``SqEuclidean(precision=...)``, full float32 by default) on the products that form
costs, full float32 (``HIGHEST``) on every other product (plan times vectors, CG inner products, maps).
"""

import re

import jax
import pytest

import ott_fast as otf
from ott_fast.costs import Cosine, Euclidean, SqEuclidean

N, M, D, V = 24, 20, 3, 5  # distinct sizes: a product touches the point dimension D only if it forms costs
_DOT = re.compile(r"stablehlo\.dot_general .*?(precision = \[(\w+), (\w+)\])?\s*: \((.*?)\) ->")


def _dots(fn, *args) -> list[tuple[str | None, bool]]:
    """``(precision or None, forms_costs)`` for every ``dot_general`` in the lowered ``fn``."""
    txt = jax.jit(fn).lower(*args).as_text()
    out = []
    for line in txt.splitlines():
        if "stablehlo.dot_general" not in line:
            continue
        mt = _DOT.search(line)
        assert mt, line
        lhs, rhs = mt.group(2), mt.group(3)
        assert lhs == rhs, line
        shapes = re.findall(r"tensor<([0-9x]*)x?f\d+>", mt.group(4))
        forms_costs = any(str(D) in s.split("x") for s in shapes)
        out.append((lhs, forms_costs))
    return out


def _solve_and_derived(cost, chunk):
    def fn(x, y, v):
        def loss(x):
            out = otf.sinkhorn(otf.PointCloud(x, y, cost=cost, epsilon=0.5, chunk_size=chunk), max_iters=20)
            return out.reg_ot_cost, out

        (val, out), grad = jax.value_and_grad(loss, has_aux=True)(x)  # implicit backward pass
        div = otf.sinkhorn_divergence(x, y, epsilon=0.5, cost=cost) if chunk is None else val
        return val, grad, out.transport_cost, out.apply(v), out.apply(v[:M], axis=1), out.matrix, div

    return fn


def _inputs():
    kx, ky, kv = jax.random.split(jax.random.PRNGKey(0), 3)
    return jax.random.normal(kx, (N, D)), jax.random.normal(ky, (M, D)), jax.random.normal(kv, (N, V))


@pytest.mark.parametrize("chunk", [None, 8])
@pytest.mark.parametrize("requested", [None, jax.lax.Precision.DEFAULT])
def test_every_dot_in_solve_grad_and_derived_has_requested_precision(chunk, requested):
    cost = SqEuclidean() if requested is None else SqEuclidean(precision=requested)
    dots = _dots(_solve_and_derived(cost, chunk), *_inputs())
    want_cost = "HIGHEST" if requested is None else requested.name
    assert any(c for _, c in dots) and any(not c for _, c in dots), dots  # both kinds are there
    for prec, forms_costs in dots:
        assert prec == (want_cost if forms_costs else "HIGHEST"), dots


def test_entropic_map_sliced_and_other_costs_state_their_precision():
    x, y, _ = _inputs()
    key = jax.random.PRNGKey(1)

    def maps(x, y):
        t = otf.entropic_map(x, y, epsilon=0.5, max_iters=20)
        return t(x[:4])

    def sliced(x, y):
        return jax.value_and_grad(lambda x: otf.sliced_wasserstein(key, x, y, n_projections=7))(x)

    def costs(x, y):
        fast = jax.lax.Precision.DEFAULT
        return Euclidean(precision=fast).all_pairs(x, y), Cosine(precision=fast).all_pairs(x, y)

    for fn, want_cost in ((maps, "HIGHEST"), (sliced, "HIGHEST"), (costs, "DEFAULT")):
        dots = _dots(fn, x, y)
        assert dots, fn
        for prec, forms_costs in dots:
            assert prec == (want_cost if forms_costs else "HIGHEST"), (fn.__name__, dots)
