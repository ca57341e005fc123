"""Markdown tables from the suites' JSON, and the sections of the docs' benchmarks page they regenerate.

Each suite writes ``<out>/<suite>.json``. :func:`render` turns it into the markdown table(s) that
``docs/benchmarks.md`` (:data:`PAGE`) shows between ``<!-- benchmark:<suite> -->`` and
``<!-- /benchmark:<suite> -->``; :func:`update_tables` replaces those sections, so
``python -m benchmarks --update-docs`` (a full run) regenerates the page's tables from what it measured
(without the flag, and in quick runs, the page is never touched). :func:`update_plots` copies each suite's
plots to ``docs/_static/benchmarks/`` and lists them between ``<!-- benchmark-plots:<suite> -->`` markers.
A suite whose JSON or plots are missing keeps its section.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
from collections.abc import Callable
from typing import Any


def _f(x: float, digits: int = 3) -> str:
    return f"{x:.{digits}g}"


def render_sinkhorn(data: dict[str, Any]) -> str:
    meta = data.get("meta", {})
    v = meta.get("versions", {})
    lines = [
        f"Measured by `python -m benchmarks` ({meta.get('mode', '?')} mode) on {meta.get('cpu_count', '?')} CPU "
        f"cores ({meta.get('machine', '?')}), JAX {v.get('jax', '?')} on {meta.get('jax_backend', '?')}, "
        f"OTT-JAX {v.get('ott-jax', '?')}, POT {v.get('pot', '?')}.",
        "",
        "| case | solver | iterations | time to tol [s] | ms / iteration | final L1 error |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    names = {"ott_fast": "**ott_fast**", "ott-jax": "OTT-JAX", "pot": "POT (float64, NumPy)"}
    for case in (c for c in data["cases"] if "batch" not in c):
        for i, r in enumerate(case["results"]):
            label = f"n = m = {case['n']}, d = {case['d']}" if i == 0 else ""
            lines.append(
                f"| {label} | {names.get(r['solver'], r['solver'])} | {r['iterations']} | {r['seconds']:.3g} "
                f"| {r['ms_per_iter']:.3g} | {r['final_error']:.1e} |"
            )
    for case in (c for c in data["cases"] if "batch" in c):
        lines += [
            "",
            f"| batch of {case['batch']} problems, n = m = {case['n']}, d = {case['d']} | time [s] "
            "| slowest member's iterations |",
            "| --- | ---: | ---: |",
        ]
        for r in case["results"]:
            lines.append(f"| {r['solver']} | {r['seconds']:.3g} | {r['iterations_max']} |")
    return "\n".join(lines)


def render_online(data: dict[str, Any]) -> str:
    lines = [
        "| case | ott_fast it/s | peak RSS | OTT-JAX online it/s | peak RSS | speed-up |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for c in (c for c in data.get("online", []) if "ott_fast" in c and "error" not in c["ott_fast"]):
        ours, theirs = c["ott_fast"], c["ott-jax"]
        if "error" in theirs:
            t_its = t_rss = up = "-"
        else:
            t_its, t_rss = _f(theirs["iters_per_second"]), f"{theirs['peak_rss'] / 1e9:.2f} GB"
            up = f"{ours['iters_per_second'] / theirs['iters_per_second']:.1f}x"
        lines.append(
            f"| n = m = {c['n']:,}, d = {c['d']} | {_f(ours['iters_per_second'])} | "
            f"{ours['peak_rss'] / 1e9:.2f} GB | {t_its} | {t_rss} | {up} |"
        )
    return "\n".join(lines) if len(lines) > 2 else ""


def render_sns(data: dict[str, Any]) -> str:
    lines = [
        f"eta = 1 / epsilon = {data['eta']:g}, float64, every solver to an L1 marginal error of {data['tol']:g} "
        "(rescored from its final plan); seconds exclude compilation (SNS and regot: best of 3, the Sinkhorns: one "
        "timed run).",
        "",
        "| problem | solver | iterations | seconds | final L1 error | our Sinkhorn / SNS (iterations, seconds) "
        "| SNS / regot seconds | paper (CPU): SNS, Sinkhorn |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for case in data["cases"]:
        p = case.get("paper")
        paper = f"{p['sns_iters']} it, {p['sns_s']} s; {p['sinkhorn_iters']} it, {p['sinkhorn_s']} s" if p else ""
        more = "" if case["sinkhorn_converged"] else ">"
        ratio = f"{more}{case['sinkhorn_over_sns_iters']:.0f}x, {more}{case['sinkhorn_over_sns_seconds']:.1f}x"
        if "plain_sinkhorn_over_sns_seconds" in case:
            pm = "" if case["plain_sinkhorn_converged"] else ">"
            ps, pi = case["plain_sinkhorn_over_sns_seconds"], case["plain_sinkhorn_over_sns_iters"]
            ratio += f" (plain Sinkhorn: {pm}{pi:.0f}x, {pm}{ps:.1f}x)"
        reg = f"{case['sns_over_regot_seconds']:.2f}" if "sns_over_regot_seconds" in case else "-"
        for i, r in enumerate(case["results"]):
            first = i == 0
            it = r["iterations"]
            if r["solver"].startswith("ott_fast sns"):
                it = f"{it} ({it - r['newton_steps']} Sinkhorn + {r['newton_steps']} Newton)"
            conv = "" if r["converged"] else " (cap)"
            lines.append(
                f"| {case['case'] if first else ''} | {r['solver']} | {it}{conv} | {r['seconds']:.3g} "
                f"| {r['final_error']:.1e} | {ratio if first else ''} | {reg if first else ''} "
                f"| {paper if first else ''} |"
            )
    return "\n".join(lines)


def _machine(meta: dict[str, Any]) -> str:
    v = meta.get("versions", {})
    libs = ", ".join(f"{k} {val}" for k, val in v.items() if k != "python")
    return (
        f"{meta.get('mode', '?')} mode, {meta.get('cpu_count', '?')} CPU cores, {meta.get('jax_backend', '?')}; {libs}"
    )


def render_sliced(data: dict[str, Any]) -> str:
    lines = [f"Measured by `python -m benchmarks --suites sliced` ({_machine(data.get('meta', {}))}).", ""]
    lines += [
        "| throughput case | ott_fast [s] | OTT-JAX [s] | POT [s] | speed-up vs the faster |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for case in data["throughput"]:
        r = {row["solver"].split()[0]: row["seconds"] for row in case["results"][:3]}
        up = case.get("speedup_vs_fastest_other")
        lines.append(
            f"| {case['case']} | {r.get('ott_fast', float('nan')):.3g} | {r.get('ott-jax', float('nan')):.3g} "
            f"| {r.get('pot', float('nan')):.3g} | {'' if up is None else f'**{up:.1f}x**'} |"
        )
    for case in data["accuracy"]:
        ls = case["n_projections"]
        lines += [
            "",
            f"{case['case']} (n = {case['n']}, m = {case['m']}, d = {case['d']}): relative RMSE of `SW_2^2` over "
            f"{case['keys']} keys, and variance reduction against Monte Carlo, at L projections",
            "",
            "| estimator | "
            + " | ".join(f"RMSE L={L}" for L in ls)
            + " | "
            + " | ".join(f"VR L={L}" for L in ls)
            + " |",
            "| --- |" + " ---: |" * (2 * len(ls)),
        ]
        for est, r in case["results"].items():
            errs = " | ".join(f"{e / case['true_sw2']:.2e}" for e in r["rmse"])
            reds = " | ".join(f"{v:.3g}" for v in r["variance_reduction_vs_mc"])
            lines.append(f"| {est} | {errs} | {reds} |")
    flow = data.get("flow")
    if flow:
        steps = flow["results"]["mc"]["steps"]
        show = sorted({len(steps) // 4, len(steps) // 2, len(steps) - 1})
        lines += [
            "",
            f"{flow['case']}: exact `W_2^2` to the target (`ot.emd2`)",
            "",
            "| estimator | " + " | ".join(f"step {steps[i]}" for i in show) + " |",
            "| --- |" + " ---: |" * len(show),
        ]
        for est, r in flow["results"].items():
            lines.append(f"| {est} | " + " | ".join(f"{r['w2_squared'][i]:.3e}" for i in show) + " |")
    return "\n".join(lines)


def render_monge_gap(data: dict[str, Any]) -> str:
    meta = data.get("meta", {})
    cases = data["cases"]
    methods: list[str] = []
    for case in cases:
        for r in case["rows"]:
            if r["method"] not in methods and "wrong" not in r["method"]:
                methods.append(r["method"])
    lines = [
        f"Measured by `python -m benchmarks --suites monge_gap` ({_machine(meta)}); epsilon "
        f"{meta.get('epsilon', '?')}. L2-UVP in % on held-out samples (lower is better); steps/s exclude "
        "compilation.",
        "",
        "| case | " + " | ".join(methods) + " | OTT-JAX steps/s | ott_fast steps/s | speed-up |",
        "| --- |" + " ---: |" * (len(methods) + 3),
    ]
    for case in cases:
        by = {r["method"]: r for r in case["rows"]}
        cells = []
        for m in methods:
            r = by.get(m)
            cells.append("-" if r is None or "l2_uvp" not in r else f"{r['l2_uvp']:.2f}")
        ott, ours = by.get("OTT-JAX MongeGapEstimator", {}), by.get("ott_fast fit, with gap", {})
        so, sf = ott.get("steps_per_s"), ours.get("steps_per_s")
        up = f"{sf / so:.2f}x" if so and sf else "-"
        lines.append(
            f"| {case['case']} | " + " | ".join(cells) + f" | {'-' if not so else f'{so:.1f}'} "
            f"| {'-' if not sf else f'{sf:.1f}'} | {up} |"
        )
    return "\n".join(lines)


def render_device(data: dict[str, Any]) -> str:
    meta = data.get("meta", {})
    roof = meta.get("roofline")
    assumed = (
        "no roofline figures"
        if not roof
        else f"roofline assumed: {roof['bandwidth'] / 1e9:.0f} GB/s, {roof['exp'] / 1e9:.0f} Gexp/s, "
        f"{roof['matmul'] / 1e12:.1f} float32 TFLOP/s"
    )
    v = meta.get("versions", {})
    lines = [
        f"Measured by `python -m benchmarks --suites device` ({meta.get('mode', '?')} mode) on "
        f"{meta.get('device', '?')}, JAX {v.get('jax', '?')}, OTT-JAX {v.get('ott-jax', '?')}; {assumed}.",
        "",
        "| case | unit | ott_fast /s | % of roofline | OTT-JAX /s | % of roofline |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]

    def cells(r: dict[str, Any] | None) -> str:
        if not r:
            return "- | -"
        if "error" in r:
            return "failed | -"
        frac = r.get("fraction_of_roofline")
        return f"{r['per_second']:.4g} | " + ("-" if frac is None else f"{100 * frac:.1f}")

    for case in data["cases"]:
        peer, note = case.get("ott-jax"), ""
        if (not peer or "error" in peer) and "ott-jax dense" in case:
            peer, note = case["ott-jax dense"], " (OTT-JAX: stored matrix, its online mode failed)"
        lines.append(f"| {case['case']}{note} | {case['unit']} | {cells(case['ott_fast'])} | {cells(peer)} |")
    couplings = data.get("couplings", [])
    if couplings:
        lines += [
            "",
            "Flow-matching couplings (ott_fast): online Sinkhorn at epsilon = 0.01 x the mean cost, then one "
            "conditional draw per source point; seconds exclude compilation, memory is XLA's compiled temporaries.",
            "",
            "| case | iterations | solve [s] | % of roofline | solve temp. [MB] | sample [s] | % of roofline "
            "| sample temp. [MB] | pairs cost / mean cost |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]

        def mb(nbytes: int | None) -> str:
            return "-" if nbytes is None else f"{nbytes / 1e6:.1f}"

        def pct(frac: float | None) -> str:
            return "-" if frac is None else f"{100 * frac:.1f}"

        for c in couplings:
            if "error" in c:
                lines.append(f"| {c['case']} | failed: {c['error']} | | | | | | | |")
                continue
            its = f"{c['iterations']}" + ("" if c["converged"] else " (cap)")
            lines.append(
                f"| {c['case']} | {its} | {c['solve_s']:.3g} | {pct(c['solve_fraction_of_roofline'])} "
                f"| {mb(c['solve_temp_bytes'])} | {c['sample_s']:.3g} | {pct(c['sample_fraction_of_roofline'])} "
                f"| {mb(c['sample_temp_bytes'])} | {c['pair_cost'] / c['mean_cost']:.3f} |"
            )
    return "\n".join(lines)


def render_couplings(data: dict[str, Any]) -> str:
    """Per case (n, d), every coupling's seconds, cost against the exact one, pairs' cost, memory, and its
    speed-up over POT's ``ot.emd`` where both ran."""
    meta = data.get("meta", {})
    rels = ", ".join(f"{e:g}" for e in meta.get("epsilons_relative_to_mean_cost", []))
    command = meta.get("command", "python -m benchmarks --suites couplings")
    loose = f" (and {meta['loose_tol']:g} where the row says so)" if meta.get("loose_tol") else ""
    lines = [
        f"Measured by `{command}` ({_machine(meta)}); epsilons {rels or '?'} x the "
        f"mean cost, tol {meta.get('tol', '?')}{loose}. Seconds exclude compilation; cost: the coupling's mean "
        "pair cost (a permutation) or `<P, C>` (an entropic plan) against the exact one; pairs cost: the mean "
        "cost of the n "
        "pairs drawn; memory: XLA's compiled buffers (JAX) or the float64 cost matrix and plan (POT).",
        "",
        "| case | coupling | time [s] | cost vs exact | pairs cost | memory [MB] | speed-up vs POT emd |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for case in data["cases"]:
        pot = next((r for r in case["results"] if r["solver"] == "pot emd" and not r.get("error")), None)
        for i, r in enumerate(case["results"]):
            label = f"n = {case['n']:,}, d = {case['d']}" if i == 0 else ""
            mem = "-" if r.get("bytes") is None else f"{r['bytes'] / 1e6:.1f}"
            if r.get("error"):
                lines.append(f"| {label} | {r['solver']} | failed | | | {mem} | |")
                continue
            if r.get("cost") is None:
                lines.append(f"| {label} | {r['solver']} | not run | | | {mem} | |")
                continue
            rel = "-" if r.get("cost_vs_exact") is None else f"{100 * r['cost_vs_exact']:+.2f}%"
            up = "-" if pot is None or r is pot or not r["seconds"] > 0 else f"{pot['seconds'] / r['seconds']:.2g}x"
            lines.append(
                f"| {label} | {r['solver']} | {r['seconds']:.3g} | {rel} | {r['pair_cost']:.4g} | {mem} | {up} |"
            )
    return "\n".join(lines)


_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGE = os.path.join(_ROOT, "docs", "benchmarks.md")  # the page whose marked sections --update-docs rewrites
PLOTS = os.path.join(_ROOT, "docs", "_static", "benchmarks")  # where a full run copies its plots
# suite -> the glob of its plots under <out>
PLOT_GLOBS = {s: f"{s}_*.png" for s in ("sinkhorn", "sns", "sliced", "monge_gap")} | {"divergence": "divergence.png"}


def render_batches(data: dict[str, Any]) -> str:
    meta = data.get("meta", {})
    lines = [
        f"Measured by `python -m benchmarks.batches` ({_machine(meta)}); tol {meta.get('tol', '?')} on the L1 "
        "marginal error, rescored from each final plan; seconds exclude compilation.",
    ]
    for case in data["cases"]:
        ours = case["results"][0]
        lines += [
            "",
            f"| {case['case']} | time [s] | ms / problem | iterations mean (max) | converged | max L1 error "
            "| ott_fast vmap faster by |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for r in case["results"]:
            lines.append(
                f"| {r['solver']} | {r['seconds']:.3g} | {r['ms_per_problem']:.3g} | {r['iterations_mean']:.1f} "
                f"({r['iterations_max']}) | {r['converged']} | {r['final_error_max']:.1e} "
                f"| {r['ott_fast_vmap_speedup']:.1f}x |"
            )
        lines.append(
            f"| *per mean iteration: our vmap {ours['ms_per_mean_iteration']:.3g} ms, one problem of the batch's "
            f"total size {ours['total_size_ms_per_iteration']:.3g} ms* | | | | | | |"
        )
    return "\n".join(lines)


def render_divergence(data: dict[str, Any]) -> str:
    """The Sinkhorn divergence as a loss: per case, each setting's seconds and its errors against the reference."""
    meta = data.get("meta", {})
    lines = [
        f"Measured by `python -m benchmarks --suites divergence` ({_machine(meta)}; GeomLoss: "
        f"{meta.get('geomloss', '?')}, KeOps: {meta.get('keops', '?')}). Value + gradient in x, seconds: best of "
        f"{meta.get('repeats', '?')} after a warm-up call; errors relative to the reference named per case "
        "(GeomLoss's value and gradient doubled: its cost is |x - y|^2 / 2).",
    ]
    for case in data["cases"]:
        ref = case.get("reference")
        if ref is None:
            head = f"reference {case.get('reference_note', 'not run')}: no errors"
        else:
            head = (
                f"reference {ref['kind']}: value {ref['value']:.6g}, gradient norm {ref['grad_norm']:.4g}, "
                "L1 marginal errors reached (xy, xx, yy) "
                + ", ".join(f"{e:.1e}" for e in ref.get("marginal_errors", []))
            )
        lines += [
            "",
            f"{case['case']}, blur {case['blur']:g} (ours: epsilon {case['epsilon']:g}); {head}.",
            "",
            "| setting | seconds | value | value error | gradient error | iterations (3 solves) |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for r in case["results"]:
            note = r.get("absent") or r.get("failed") or r.get("skipped")
            if note:
                lines.append(f"| {r['solver']} | {note} | | | | |")
                continue

            def err(key: str, r: dict[str, Any] = r) -> str:
                return "-" if r.get(key) is None else f"{r[key]:.1e}"

            value = f"{r['value']:.5g}" if r.get("converged", True) else "NaN (not converged)"
            lines.append(
                f"| {r['solver']} | {r['seconds']:.3g} | {value} | {err('value_error')} | {err('grad_error')} "
                f"| {r.get('iterations', '')} |"
            )
    return "\n".join(lines)


# Page section -> (suite, its JSON file, renderer). A renderer returning "" leaves its section as it was.
SECTIONS: dict[str, tuple[str, str, Callable[[dict[str, Any]], str]]] = {
    "sinkhorn": ("sinkhorn", "benchmarks.json", render_sinkhorn),
    "sinkhorn-online": ("sinkhorn", "benchmarks.json", render_online),
    "sns": ("sns", "sns.json", render_sns),
    "sliced": ("sliced", "sliced.json", render_sliced),
    "monge_gap": ("monge_gap", "monge_gap.json", render_monge_gap),
    "batches": ("batches", "batches.json", render_batches),
    "device": ("device", "device.json", render_device),
    "divergence": ("divergence", "divergence.json", render_divergence),
    "couplings": ("couplings", "couplings.json", render_couplings),
}


def render(out: str, suites: list[str]) -> dict[str, str]:
    """``{section: markdown}`` for each page section of ``suites`` whose JSON exists under ``out``."""
    tables = {}
    for section, (suite, filename, fn) in SECTIONS.items():
        path = os.path.join(out, filename)
        if suite in suites and os.path.exists(path):
            with open(path) as fh:
                data = json.load(fh)
            try:
                table = fn(data)
            except (KeyError, TypeError, ValueError, IndexError) as exc:  # the JSON stays; only the table is lost
                print(f"report: could not render the {section!r} table from {path}: {exc!r}")
                continue
            if table:
                tables[section] = table
    return tables


def _replace_sections(path: str, kind: str, sections: dict[str, str]) -> list[str]:
    with open(path) as fh:
        text = fh.read()
    done = []
    for name, body in sections.items():
        pattern = re.compile(rf"(<!-- {kind}:{name} -->\n).*?(\n<!-- /{kind}:{name} -->)", re.S)
        text, k = pattern.subn(lambda m, b=body: m.group(1) + b + m.group(2), text)
        if k:
            done.append(name)
    with open(path, "w") as fh:
        fh.write(text)
    return done


def update_tables(page: str, tables: dict[str, str]) -> list[str]:
    """Replaces each ``<!-- benchmark:suite -->...<!-- /benchmark:suite -->`` section of the markdown file
    ``page`` with its table; returns the sections that were found and replaced."""
    return _replace_sections(page, "benchmark", tables)


def update_plots(page: str, out: str, suites: list[str], static_dir: str = PLOTS) -> list[str]:
    """Copies each suite's plots from ``out`` to ``static_dir`` and lists them as images in the page's
    ``<!-- benchmark-plots:suite -->`` section; suites without plots keep their section. Returns the
    sections that were replaced."""
    sections = {}
    rel = os.path.relpath(static_dir, os.path.dirname(os.path.abspath(page))).replace(os.sep, "/")
    for suite in suites:
        paths = sorted(glob.glob(os.path.join(out, PLOT_GLOBS.get(suite, "\0"))))
        if not paths:
            continue
        os.makedirs(static_dir, exist_ok=True)
        lines = []
        for path in paths:
            name = os.path.basename(path)
            shutil.copyfile(path, os.path.join(static_dir, name))
            lines.append(f"![{name}]({rel}/{name})")
        sections[suite] = "\n\n".join(lines)
    return _replace_sections(page, "benchmark-plots", sections)
