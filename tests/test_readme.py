"""The README's Python example runs as written."""

import pathlib
import re

import jax.numpy as jnp

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python example"
    scope: dict = {}
    for code in blocks:
        exec(compile(code, str(README), "exec"), scope)
    assert bool(scope["out"].converged)
    assert scope["costs"].shape == (16,) and bool(jnp.all(jnp.isfinite(scope["costs"])))
    assert scope["grad_x"].shape == (500, 3) and bool(jnp.all(jnp.isfinite(scope["grad_x"])))
    assert bool(jnp.all(jnp.isfinite(scope["f"])))  # the sharding example (one device here)
    assert bool(scope["sns_out"].converged) and int(scope["sns_out"].n_iters) < 100
    assert [c.label for c in scope["curves"]][:3] == ["sinkhorn", "sinkhorn, over-relaxed", "sns"]
    assert all(c.errors[-1] <= 1e-5 for c in scope["curves"])
    assert float(scope["sw"]) > 0 and bool(jnp.all(jnp.isfinite(scope["grad"]))) and scope["batch"].shape == (8,)
    assert float(scope["sw"]) <= 1.01 * float(scope["msw"])  # SW_2^2 <= Max-SW_2^2 (both p-th powers)
    assert bool(scope["gap"].converged) and float(scope["gap"].gap) >= float(scope["gap"].floor) - 1e-4


def test_readme_starts_with_the_two_commands_ci_runs():
    lines = README.read_text().splitlines()
    start = lines.index("```bash")
    cmds = lines[start + 1 : start + 3]
    assert cmds[0].endswith('pip install -e ".[bench]" && python -m benchmarks --quick')
    assert cmds[1].endswith('pip install -e ".[test]" && pytest')
    ci = (README.parent / ".ci" / "run").read_text()
    assert cmds[1] in ci
