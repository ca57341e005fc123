"""The benchmark harness runs end to end (quick mode) and scores every library with the same error."""

import importlib
import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.filterwarnings("ignore")
def test_quick_benchmark_writes_table_json_and_plots(tmp_path, capsys):
    from benchmarks.__main__ import main

    assert main(["--quick", "--out", str(tmp_path), "--suites", "sinkhorn"]) == 0
    report = json.loads((tmp_path / "benchmarks.json").read_text())
    single = [c for c in report["cases"] if "batch" not in c]
    assert len(single) == 2
    for case in single:
        names = [r["solver"] for r in case["results"]]
        assert names == ["ott_fast", "ott-jax", "pot"]
        for r in case["results"]:
            assert r["final_error"] <= 1.5 * case["tol"]  # float32 plans rescored in float64
            assert r["cost_rel_diff_vs_ott_fast"] < 1e-2
    batch = [c for c in report["cases"] if "batch" in c][0]
    assert all(r["converged"] == r["problems"] for r in batch["results"])
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["sinkhorn_n500_d3.png", "sinkhorn_n500_d64.png"]
    assert "time to tolerance" in capsys.readouterr().out


@pytest.mark.filterwarnings("ignore")
def test_quick_sns_benchmark(tmp_path, capsys):
    from benchmarks.sns import main

    assert main(["--quick", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "sns.json").read_text())
    (case,) = report["cases"]
    sns, sk = case["results"][:2]
    assert sns["solver"] == "ott_fast sns" and sns["converged"] and sns["final_error"] <= 1e-10
    assert sns["iterations"] < sk["iterations"]
    assert len(sns["curve_seconds"]) == len(sns["curve_errors"]) == len(sns["curve_gaps"])
    assert list(tmp_path.glob("sns_*.png"))
    assert "Sinkhorn / SNS" in capsys.readouterr().out
    import jax.numpy as jnp

    assert jnp.zeros(1).dtype == jnp.float32  # the benchmark's float64 is scoped
    from benchmarks import report as rep

    table = rep.render(str(tmp_path), ["sns"])["sns"]
    assert table.count("\n| random assignment n=100 |") == 1 and "ott_fast sns" in table


def test_update_tables_replaces_only_the_marked_section(tmp_path):
    from benchmarks import report as rep

    page = tmp_path / "benchmarks.md"
    page.write_text("intro\n<!-- benchmark:sns -->\nold table\n<!-- /benchmark:sns -->\noutro\n")
    assert rep.update_tables(str(page), {"sns": "| new |", "sliced": "| absent |"}) == ["sns"]
    assert page.read_text() == "intro\n<!-- benchmark:sns -->\n| new |\n<!-- /benchmark:sns -->\noutro\n"


def test_update_plots_copies_the_plots_and_lists_them(tmp_path):
    from benchmarks import report as rep

    out, static = tmp_path / "out", tmp_path / "docs" / "_static" / "benchmarks"
    out.mkdir()
    (out / "sns_a.png").write_bytes(b"png")
    page = tmp_path / "docs" / "benchmarks.md"
    page.parent.mkdir()
    page.write_text(
        "<!-- benchmark-plots:sns -->\nnone yet\n<!-- /benchmark-plots:sns -->\n"
        "<!-- benchmark-plots:sliced -->\nkept\n<!-- /benchmark-plots:sliced -->\n"
    )
    assert rep.update_plots(str(page), str(out), ["sns", "sliced"], static_dir=str(static)) == ["sns"]
    assert (static / "sns_a.png").read_bytes() == b"png"
    assert "![sns_a.png](_static/benchmarks/sns_a.png)" in page.read_text() and "kept" in page.read_text()


def test_a_full_run_leaves_the_docs_page_alone_unless_asked(tmp_path, monkeypatch):
    """``python -m benchmarks`` (full mode) writes under ``--out`` only; ``--update-docs`` rewrites the page."""
    import benchmarks.__main__ as bench
    from benchmarks import report as rep

    page, static = tmp_path / "benchmarks.md", tmp_path / "static"
    original = "<!-- benchmark:sinkhorn -->\nold table\n<!-- /benchmark:sinkhorn -->\n"
    page.write_text(original)
    monkeypatch.setattr(rep, "PAGE", str(page))
    monkeypatch.setattr(rep, "PLOTS", str(static))
    monkeypatch.setattr(bench, "sinkhorn_suite", lambda args: None)  # the suite itself is tested above
    monkeypatch.setattr(rep, "render", lambda out, suites: {"sinkhorn": "| measured |"})
    out = tmp_path / "out"
    assert bench.main(["--out", str(out), "--suites", "sinkhorn"]) == 0
    assert page.read_text() == original
    assert (out / "benchmarks.md").read_text() == "## sinkhorn\n\n| measured |\n\n"
    assert bench.main(["--out", str(out), "--suites", "sinkhorn", "--update-docs"]) == 0
    assert page.read_text() == original.replace("old table", "| measured |")
    with pytest.raises(SystemExit):  # quick runs never feed the docs
        bench.main(["--quick", "--out", str(out), "--suites", "sinkhorn", "--update-docs"])


def test_the_docs_page_has_every_section_the_report_writes():
    from benchmarks import report as rep

    text = open(rep.PAGE).read()
    for section in rep.SECTIONS:
        assert f"<!-- benchmark:{section} -->" in text and f"<!-- /benchmark:{section} -->" in text
    for suite in rep.PLOT_GLOBS:
        assert f"<!-- benchmark-plots:{suite} -->" in text and f"<!-- /benchmark-plots:{suite} -->" in text


@pytest.mark.filterwarnings("ignore")
def test_quick_device_benchmark_measures_every_case_against_a_roofline(tmp_path, capsys):
    from benchmarks.__main__ import main

    figures = ["--bandwidth-gbs", "20", "--exp-gops", "2", "--matmul-tflops", "0.1"]  # a CPU has no table entry
    assert main(["--quick", "--out", str(tmp_path), "--suites", "device"] + figures) == 0
    report = json.loads((tmp_path / "device.json").read_text())
    assert report["meta"]["roofline"] == {"bandwidth": 20e9, "exp": 2e9, "matmul": 0.1e12}
    cases = [c["case"] for c in report["cases"]]
    assert sum(c.startswith("online Sinkhorn") for c in cases) == 2 and cases[-2].startswith("vmap batch")
    assert cases[-1].startswith("sliced Wasserstein")
    for case in report["cases"]:
        assert case["bound_s"] > 0
        peers = [k for k in ("ott-jax", "ott-jax dense") if k in case]
        assert peers, case  # OTT-JAX ran, or its failure (online on this JAX) is recorded with its dense run
        for name in ["ott_fast"] + peers:
            r = case[name]
            assert ("per_second" in r and r["per_second"] > 0) or r["error"], (name, r)
            if "per_second" in r:
                assert r["fraction_of_roofline"] == pytest.approx(
                    case.get("bound_per_unit", case["bound_s"]) / r["seconds_per_unit"]
                )
    out = capsys.readouterr().out
    assert "roofline assumed: bandwidth 20 GB/s, exp 2 Gop/s, float32 matmul 0.1 TFLOP/s" in out
    (coupling,) = report["couplings"]  # the flow-matching coupling, at a tiny size
    assert coupling["n"] == 256 and "error" not in coupling, coupling
    assert coupling["valid"] and coupling["converged"] and coupling["iterations"] > 0
    assert coupling["solve_s"] > 0 and coupling["sample_s"] > 0 and coupling["sample_fraction_of_roofline"] > 0
    assert coupling["solve_temp_bytes"] is not None and coupling["sample_temp_bytes"] is not None
    assert coupling["pair_cost"] < coupling["mean_cost"]  # the coupling pairs closer points than chance
    from benchmarks import report as rep

    table = rep.render(str(tmp_path), ["device"])["device"]
    assert table.count("| online Sinkhorn") == 2 and "| coupling, n=m=256, d=64 |" in table


def test_render_couplings_writes_one_row_per_coupling_and_the_speed_up_over_pot():
    from benchmarks import report as rep

    def row(solver, seconds, cost, bytes_=1_000_000, **extra):
        return {"solver": solver, "seconds": seconds, "cost": cost, "pair_cost": cost, "bytes": bytes_, **extra}

    small = [
        row("ott_fast exact", 0.5, 2.0, cost_vs_exact=0.0),
        row("ott_fast sinkhorn eps=0.01", 0.1, 2.02, converged=True, entropy_ratio=0.3, cost_vs_exact=0.01),
        row("pot emd", 0.2, 2.0, 16 * 256**2, cost_vs_exact=0.0),
        row("ott-jax match_linear+sample_joint", float("nan"), None, 2_000_000, error=None, note="compiled only"),
    ]
    large = [  # beyond the exact solvers: no cost reference, no POT
        row("ott_fast sinkhorn eps=0.01 (online, 128 rows)", 3.0, 5.0, None, cost_vs_exact=None),
        row("ott-jax match_linear+sample_joint", float("nan"), None, None, error="RESOURCE_EXHAUSTED"),
    ]
    for r in large:
        r.setdefault("cost_vs_exact", None)
    small[3]["cost_vs_exact"] = None
    data = {
        "meta": {"mode": "full", "cpu_count": 2, "tol": 1e-3, "epsilons_relative_to_mean_cost": [0.1, 0.01]},
        "cases": [
            {"case": "n=256, d=2", "n": 256, "d": 2, "mean_cost": 10.0, "results": small},
            {"case": "n=16384, d=64", "n": 16384, "d": 64, "mean_cost": 140.0, "results": large},
        ],
    }
    table = rep.render_couplings(data)
    lines = table.splitlines()
    assert "epsilons 0.1, 0.01 x the mean cost, tol 0.001" in lines[0]
    assert lines[2].count("|") == 8 and len(lines) == 4 + len(small) + len(large)
    assert "| n = 256, d = 2 | ott_fast exact | 0.5 | +0.00% | 2 | 1.0 | 0.4x |" in lines
    assert "|  | ott_fast sinkhorn eps=0.01 | 0.1 | +1.00% | 2.02 | 1.0 | 2x |" in lines
    assert "|  | pot emd | 0.2 | +0.00% | 2 | 1.0 | - |" in lines
    assert "|  | ott-jax match_linear+sample_joint | not run | | | 2.0 | |" in lines
    assert "| n = 16,384, d = 64 | ott_fast sinkhorn eps=0.01 (online, 128 rows) | 3 | - | 5 | - | - |" in lines
    assert "|  | ott-jax match_linear+sample_joint | failed | | | - | |" in lines
    assert rep.SECTIONS["couplings"] == ("couplings", "couplings.json", rep.render_couplings)


@pytest.mark.filterwarnings("ignore")
def test_batches_benchmark_scores_every_solver_on_equal_and_ragged_batches():
    from benchmarks import batches
    from benchmarks import report as rep

    equal = batches.run_case(12, (10, 10), 2, repeats=1)
    ragged = batches.run_case(12, (6, 10), 3, repeats=1)
    assert [r["solver"] for r in equal["results"]][-1].startswith("pot")
    assert not any(r["solver"].startswith("pot") for r in ragged["results"])  # POT has no ragged batches
    for case in (equal, ragged):
        ours = case["results"][0]
        assert ours["converged"] == 12 and ours["final_error_max"] <= batches.TOL
        loops = [r for r in case["results"] if "loop" in r["solver"]]
        # the vmap and the loops solve the same problems: the same iteration counts, up to float32 rounding
        assert all(abs(r["iterations_mean"] - ours["iterations_mean"]) <= 1.0 for r in loops)
    table = rep.render_batches({"meta": {"tol": batches.TOL}, "cases": [equal, ragged]})
    assert table.count("| ott_fast vmap |") == 2 and "(padded)" in table


@pytest.mark.parametrize(
    "name", sorted(p.stem for p in (Path(__file__).parents[1] / "benchmarks").glob("*.py") if p.stem != "__init__")
)
def test_every_benchmark_module_imports_and_parses_its_arguments(name):
    """Suites not run by the tests (full-size only) still import, and their ``--help`` works."""
    mod = importlib.import_module(f"benchmarks.{name}")
    if hasattr(mod, "main") and name != "__main__":
        with pytest.raises(SystemExit) as exit_:
            mod.main(["--help"])
        assert exit_.value.code == 0
