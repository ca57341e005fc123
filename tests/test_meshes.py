"""Meshes as measures: against trimesh, closed forms, chi-square tests and finite differences."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats as st

import ott_fast as otf
from ott_fast import meshes

trimesh = pytest.importorskip("trimesh")


def _bumpy_sphere(subdivisions=2, seed=0, noise=0.1):
    s = trimesh.creation.icosphere(subdivisions=subdivisions)
    rng = np.random.default_rng(seed)
    v = s.vertices * (1.0 + noise * rng.uniform(-1, 1, (len(s.vertices), 1))) * np.array([1.0, 0.7, 1.3])
    return v, np.asarray(s.faces)


def _meshes():
    v, f = _bumpy_sphere()
    yield "bumpy sphere", v, f
    t = trimesh.creation.torus(major_radius=1.0, minor_radius=0.3, major_sections=16, minor_sections=8)
    yield "torus", np.asarray(t.vertices), np.asarray(t.faces)
    b = trimesh.creation.box(extents=(1.0, 2.0, 0.5))
    yield "box", np.asarray(b.vertices) + 3.0, np.asarray(b.faces)


# ------------------------------------------------------------------------------------------ face geometry


@pytest.mark.parametrize("case", list(_meshes()), ids=lambda c: c[0])
def test_face_geometry_matches_trimesh(x64, case):
    _, v, f = case
    ref = trimesh.Trimesh(vertices=v, faces=f, process=False)
    g = meshes.face_geometry(v, f)
    np.testing.assert_allclose(np.asarray(g.areas), ref.area_faces, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(g.normals), ref.face_normals, atol=1e-12)
    np.testing.assert_allclose(np.asarray(g.centroids), ref.triangles_center, atol=1e-12)


def test_degenerate_faces_weight_zero_finite_normals_and_gradients():
    v, f = _bumpy_sphere(1)
    v = np.concatenate([v, v[:1], [[5.0, 5.0, 5.0]]]).astype(np.float32)  # a duplicate of vertex 0
    n = len(v)
    f = np.concatenate([f, [[0, n - 2, 5], [3, 3, 3], [0, 1, 1]]])  # zero-area faces: a sliver, a point, an edge
    g = meshes.face_geometry(v, f)
    assert np.all(np.asarray(g.areas[-3:]) == 0.0) and np.all(np.asarray(g.normals[-3:]) == 0.0)
    x, a = meshes.varifold(v, f)
    assert np.all(np.asarray(a[-3:]) == 0.0) and np.isclose(float(a.sum()), 1.0, atol=1e-6)

    def loss(v):
        g = meshes.face_geometry(v, f)
        x, a = meshes.varifold(v, f)
        return jnp.sum(g.areas) + jnp.sum(g.normals * 0.3) + jnp.sum(x * a[:, None])

    grad = jax.grad(loss)(jnp.asarray(v))
    assert bool(jnp.all(jnp.isfinite(grad)))


def test_varifold_exactly_invariant_to_reindexing_and_corner_rotation():
    v, f = _bumpy_sphere(2, seed=3)
    v = v.astype(np.float32)
    x, a = meshes.varifold(v, f, normal_scale=0.5)
    x, a = np.asarray(x), np.asarray(a)
    assert abs(a.sum() - 1.0) < 1e-6
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(v))  # new vertex i is old vertex perm[i]
    inv = np.argsort(perm)
    x2, a2 = meshes.varifold(v[perm], inv[f], normal_scale=0.5)
    np.testing.assert_array_equal(np.asarray(x2), x)  # bitwise
    np.testing.assert_array_equal(np.asarray(a2), a)
    shift = rng.integers(0, 3, len(f))  # each face listed from a different corner, same orientation
    rot = np.stack([f[np.arange(len(f)), (shift + k) % 3] for k in range(3)], axis=1)
    x3, a3 = meshes.varifold(v, rot, normal_scale=0.5)
    np.testing.assert_array_equal(np.asarray(x3), x)
    np.testing.assert_array_equal(np.asarray(a3), a)
    order = rng.permutation(len(f))  # re-ordering the faces permutes the Diracs
    x4, a4 = meshes.varifold(v, f[order], normal_scale=0.5)
    np.testing.assert_array_equal(np.asarray(x4), x[order])
    np.testing.assert_array_equal(np.asarray(a4), a[order])
    x5, a5 = meshes.varifold(v, f[:, ::-1], normal_scale=0.5)  # reversed winding: normals negated exactly
    np.testing.assert_array_equal(np.asarray(x5[:, :3]), x[:, :3])
    np.testing.assert_array_equal(np.asarray(x5[:, 3:]), -x[:, 3:])
    np.testing.assert_array_equal(np.asarray(a5), a)
    ref = trimesh.Trimesh(vertices=v.astype(np.float64), faces=f, process=False)
    assert np.all(np.sum(ref.face_normals * (ref.triangles_center - ref.centroid), axis=1) > 0)  # outward
    np.testing.assert_allclose(x[:, 3:] / 0.5, ref.face_normals, atol=1e-5)


def test_varifold_vmap_over_meshes_with_one_face_list_and_jit():
    v, f = _bumpy_sphere(1)
    batch = np.stack([v * s for s in (0.5, 1.0, 2.0)]).astype(np.float32)
    xb, ab = jax.vmap(lambda vv: meshes.varifold(vv, f))(batch)
    xj, aj = jax.jit(lambda vv: meshes.varifold(vv, f))(batch[1])
    for i in range(3):
        x, a = meshes.varifold(batch[i], f)
        np.testing.assert_allclose(np.asarray(xb[i]), np.asarray(x), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(np.asarray(ab[i]), np.asarray(a), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(np.asarray(xj), np.asarray(meshes.varifold(batch[1], f)[0]), rtol=1e-6, atol=1e-7)


def test_bad_mesh_input_is_named():
    v, f = _bumpy_sphere(0)
    with pytest.raises(TypeError, match="faces"):
        meshes.face_geometry(v, f.astype(np.float64))
    with pytest.raises(ValueError, match="faces"):
        meshes.face_geometry(v, f + 100)
    with pytest.raises(ValueError, match="vertices"):
        meshes.face_geometry(v[:, :2], f)


# ------------------------------------------------------------------------------ SW between mesh measures


def test_sw_of_varifold_with_itself_is_zero_and_with_its_translate_is_the_closed_form(x64):
    v, f = _bumpy_sphere(2, seed=1)
    x, a = meshes.varifold(v, f, normal_scale=0.7)
    t = np.array([0.3, -0.2, 0.5])
    y, b = meshes.varifold(v + t, f, normal_scale=0.7)  # the translated mesh, not the translated points
    tau = np.concatenate([t, np.zeros(3)])
    theta = np.asarray(otf.sliced_directions(jax.random.PRNGKey(1), 64, 6))
    sw_given = jax.jit(partial(otf.sliced_wasserstein, None))
    assert float(sw_given(x, x, a, a, directions=theta)) == 0.0
    sw2 = float(sw_given(x, y, a, b, directions=theta))
    assert sw2 == pytest.approx(np.mean((theta @ tau) ** 2), rel=1e-9)  # 1-D shifts, direction by direction
    # the varifold measure against POT's sliced estimator on the same directions (POT returns the root)
    import ot

    pot = ot.sliced_wasserstein_distance(
        np.asarray(x), np.asarray(y), np.asarray(a), np.asarray(b), projections=theta.T
    )
    assert np.sqrt(sw2) == pytest.approx(pot, rel=1e-9)


# ---------------------------------------------------------------------------------------------- sampling


def _barycentric(points, tri):
    """Barycentric coordinates of points [n, 3] in their triangles [n, 3, 3] (least squares, independent of ours)."""
    e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    m = np.stack([e1, e2], axis=2)  # [n, 3, 2]
    sol = np.linalg.lstsq(m[0], (points - tri[:, 0])[0], rcond=None)[0]  # warm the call; vectorised below
    del sol
    mtm = np.einsum("nki,nkj->nij", m, m)
    rhs = np.einsum("nki,nk->ni", m, points - tri[:, 0])
    uv = np.linalg.solve(mtm, rhs[..., None])[..., 0]
    resid = points - tri[:, 0] - np.einsum("nki,ni->nk", m, uv)
    return np.column_stack([1 - uv.sum(1), uv]), np.linalg.norm(resid, axis=1)


def test_sample_surface_is_uniform_chi_square(x64):
    v, f = _bumpy_sphere(1, seed=2, noise=0.3)  # 80 faces of unequal areas
    n = 40_000
    s = meshes.sample_surface(jax.random.PRNGKey(0), v, f, n)
    areas = trimesh.Trimesh(vertices=v, faces=f, process=False).area_faces
    counts = np.bincount(np.asarray(s.face_index), minlength=len(f))
    assert st.chisquare(counts, areas / areas.sum() * n).pvalue > 1e-3
    # within each face: on the triangle, and uniform over its four midpoint sub-triangles (area 1/4 each)
    bary, resid = _barycentric(np.asarray(s.points), v[f[np.asarray(s.face_index)]])
    assert resid.max() < 1e-12 and bary.min() > -1e-12
    region = np.where(bary.max(1) > 0.5, np.argmax(bary, 1), 3)
    assert st.chisquare(np.bincount(region, minlength=4)).pvalue > 1e-3
    np.testing.assert_allclose(np.asarray(s.normals), np.asarray(meshes.face_geometry(v, f).normals)[s.face_index])
    assert np.all(np.asarray(s.weights) == 1.0 / n)


def _quadratic(x, m, c):
    return jnp.einsum("...i,ij,...j->...", x, m, x) + x @ c


@jax.jit
def _exact_expectation(v, f, m, c):
    """E h over the uniform surface measure for a quadratic h: the edge-midpoint rule is exact for degree 2."""
    p = v[f]
    g = meshes.face_geometry(v, f)
    mids = 0.5 * (p + jnp.roll(p, -1, axis=1))
    per_face = jnp.mean(_quadratic(mids, m, c), axis=1)
    return jnp.sum(g.areas * per_face) / jnp.sum(g.areas)


def test_sample_surface_vertex_gradient_matches_finite_differences_of_the_expectation(x64):
    v, f = _bumpy_sphere(0, seed=4, noise=0.3)  # 20 faces, 12 vertices
    rng = np.random.default_rng(5)
    m = rng.normal(size=(3, 3))
    m = m + m.T
    c = rng.normal(size=3)
    fd = np.zeros_like(v)
    h = 1e-6
    for i in range(v.shape[0]):
        for k in range(3):
            dv = np.zeros_like(v)
            dv[i, k] = h
            fd[i, k] = (float(_exact_expectation(v + dv, f, m, c)) - float(_exact_expectation(v - dv, f, m, c))) / (
                2 * h
            )

    def mc(v, key, with_weights=True):
        s = meshes.sample_surface(key, v, f, 200_000)
        w = s.weights if with_weights else jax.lax.stop_gradient(s.weights)
        return jnp.sum(w * _quadratic(s.points, m, c))

    keys = jax.random.split(jax.random.PRNGKey(0), 4)
    est = np.mean([np.asarray(jax.grad(mc)(jnp.asarray(v), k)) for k in keys], axis=0)
    err = np.linalg.norm(est - fd) / np.linalg.norm(fd)
    assert err < 0.05, err
    pathwise = np.asarray(jax.grad(lambda v: mc(v, keys[0], False))(jnp.asarray(v)))
    assert np.linalg.norm(pathwise - fd) / np.linalg.norm(fd) > 4 * err  # the face-choice term matters here
    # the value is an unbiased estimate of the expectation
    val = np.mean([float(mc(jnp.asarray(v), k)) for k in keys])
    assert val == pytest.approx(float(_exact_expectation(v, f, m, c)), abs=0.01 * np.abs(fd).max() + 1e-2)


# ----------------------------------------------------------------------------------------------- metrics


def _chamfer_ref(x, y, a, b, squared=True):
    d = ((x[:, None] - y[None]) ** 2).sum(-1)
    if not squared:
        d = np.sqrt(d)
    dx = np.where(b[None] > 0, d, np.inf).min(1)
    dy = np.where(a[:, None] > 0, d, np.inf).min(0)
    return (a * np.where(a > 0, dx, 0)).sum() / a.sum() + (b * np.where(b > 0, dy, 0)).sum() / b.sum()


@pytest.mark.parametrize("squared", [True, False])
def test_chamfer_matches_brute_force_with_chunks_and_zero_weights(x64, squared):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(301, 3)) + 10.0, rng.normal(size=(203, 3)) * 1.5 + 10.2
    a, b = np.ones(301), rng.uniform(0.5, 1.0, 203)
    b[[3, 50, 200]] = 0.0  # absent points
    ours = float(meshes.chamfer_distance(x, y, a, b, squared=squared, chunk_size=64))
    assert ours == pytest.approx(_chamfer_ref(x, y, a, b, squared), rel=1e-10)
    # padding with zero-weight points changes nothing
    xp, ap = np.concatenate([x, rng.normal(size=(7, 3))]), np.concatenate([a, np.zeros(7)])
    assert float(meshes.chamfer_distance(xp, y, ap, b, squared=squared, chunk_size=64)) == pytest.approx(
        ours, rel=1e-12
    )
    # gradient against central finite differences
    g = np.asarray(jax.grad(lambda x: meshes.chamfer_distance(x, y, a, b, squared=squared, chunk_size=64))(x))
    for i, k in [(0, 0), (17, 2), (300, 1)]:
        dx = np.zeros_like(x)
        dx[i, k] = 1e-6
        fd = (_chamfer_ref(x + dx, y, a, b, squared) - _chamfer_ref(x - dx, y, a, b, squared)) / 2e-6
        assert g[i, k] == pytest.approx(fd, rel=1e-5, abs=1e-9)


@pytest.mark.slow
def test_chamfer_at_100k_points_matches_a_kd_tree():
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(100_000, 3)).astype(np.float32), rng.normal(size=(100_000, 3)).astype(np.float32)
    ours = float(jax.jit(meshes.chamfer_distance)(x, y))
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    ref = (cKDTree(y64).query(x64)[0] ** 2).mean() + (cKDTree(x64).query(y64)[0] ** 2).mean()
    assert ours == pytest.approx(ref, rel=1e-4)


def test_point_to_mesh_distance_matches_trimesh_closest_points(x64):
    v, f = _bumpy_sphere(1, seed=6)
    v = np.concatenate([v, [[3.0, 0.0, 0.0], [3.0, 1.0, 0.0]]])
    f = np.concatenate([f, [[len(v) - 2, len(v) - 1, len(v) - 1]]])  # a degenerate face (a segment)
    rng = np.random.default_rng(7)
    pts = np.concatenate([rng.normal(size=(150, 3)) * 1.5, rng.normal(size=(50, 3)) * 0.3 + [3.0, 0.5, 0.0]])
    tri = v[f]
    rep_t, rep_p = np.repeat(tri[None], len(pts), 0).reshape(-1, 3, 3), np.repeat(pts, len(f), 0)
    closest = trimesh.triangles.closest_point(rep_t, rep_p)
    ref = np.linalg.norm(closest - rep_p, axis=1).reshape(len(pts), len(f)).min(1)
    ours = np.asarray(meshes.point_to_mesh_distance(pts, v, f, chunk_size=64))
    np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-12)


def test_average_surface_distance_closed_form_and_zero():
    sq = np.array([[0.0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]])
    f = np.array([[0, 1, 2], [0, 2, 3]])
    key = jax.random.PRNGKey(0)
    assert float(meshes.average_surface_distance(key, sq, f, sq + [0, 0, 0.3], f, n_samples=500)) == pytest.approx(0.3)
    assert float(meshes.average_surface_distance(key, sq, f, sq, f, n_samples=500)) < 1e-7
