"""Markdown tables from the suites' JSON, and the README sections they regenerate.

Each suite writes ``<out>/<suite>.json``. :func:`render` turns it into the markdown table(s) that the README
shows between ``<!-- benchmark:<suite> -->`` and ``<!-- /benchmark:<suite> -->``; :func:`update_readme`
replaces those sections, so a full ``python -m benchmarks`` run regenerates the README's tables from what it
measured (quick runs never touch the README). A suite whose JSON is missing keeps its section as it was.
"""

from __future__ import annotations

import json
import os
import re
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
        "(rescored from its final plan); seconds are best of 3, compilation excluded.",
        "",
        "| problem | solver | iterations | seconds | final L1 error | Sinkhorn / SNS (iterations, seconds) "
        "| SNS / regot seconds | paper (CPU): SNS, Sinkhorn |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for case in data["cases"]:
        p = case.get("paper")
        paper = f"{p['sns_iters']} it, {p['sns_s']} s; {p['sinkhorn_iters']} it, {p['sinkhorn_s']} s" if p else ""
        more = "" if case["sinkhorn_converged"] else ">"
        ratio = f"{more}{case['sinkhorn_over_sns_iters']:.0f}x, {more}{case['sinkhorn_over_sns_seconds']:.1f}x"
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


# README section -> (suite, its JSON file, renderer). A renderer returning "" leaves its section as it was.
SECTIONS: dict[str, tuple[str, str, Callable[[dict[str, Any]], str]]] = {
    "sinkhorn": ("sinkhorn", "benchmarks.json", render_sinkhorn),
    "sinkhorn-online": ("sinkhorn", "benchmarks.json", render_online),
    "sns": ("sns", "sns.json", render_sns),
}


def render(out: str, suites: list[str]) -> dict[str, str]:
    """``{section: markdown}`` for each README section of ``suites`` whose JSON exists under ``out``."""
    tables = {}
    for section, (suite, filename, fn) in SECTIONS.items():
        path = os.path.join(out, filename)
        if suite in suites and os.path.exists(path):
            with open(path) as fh:
                table = fn(json.load(fh))
            if table:
                tables[section] = table
    return tables


def update_readme(readme: str, tables: dict[str, str]) -> list[str]:
    """Replaces each ``<!-- benchmark:suite -->...<!-- /benchmark:suite -->`` section of ``readme`` with its
    table; returns the sections whose section was found and replaced."""
    with open(readme) as fh:
        text = fh.read()
    done = []
    for suite, table in tables.items():
        pattern = re.compile(rf"(<!-- benchmark:{suite} -->\n).*?(\n<!-- /benchmark:{suite} -->)", re.S)
        text, k = pattern.subn(lambda m, t=table: m.group(1) + t + m.group(2), text)
        if k:
            done.append(suite)
    with open(readme, "w") as fh:
        fh.write(text)
    return done
