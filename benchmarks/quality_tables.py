"""The README's quality tables, built from ``benchmarks/results/quality-<benchmark>.txt`` (the lines
``benchmarks/quality.py --only <benchmark>`` writes), so that no figure is copied by hand.

Prints two Markdown tables — model selection on true val groups, and with no group labels anywhere —
with ``test WGA / mean accuracy (share of the ERM -> oracle WGA gap closed)`` per benchmark, and the
curate code and date each column was measured on; then the quality targets, met or not.
Run: ``.venv/bin/python -m benchmarks.quality_tables``.
"""

from __future__ import annotations

import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
BENCHMARKS = ("digits-color", "fmnist-textures", "fmnist-mark", "fortunes-cue")
SHORT_GROUPS = {
    "pseudo (inferred by the detector)": "pseudo",
    "true val groups (DISPEL's group-labelled set)": "true val groups (DISPEL's set B)",
    "true val groups (DFR's last-layer set)": "true val groups (DFR's last-layer set)",
}


def read_rows(name: str) -> tuple[str, dict[tuple[str, str], list[str]]]:
    """``(header, {(method, mode): [train groups, acc_wg, acc_avg, gap]})`` of one result file; mode is
    ``labels`` (model selection saw group labels) or ``none``."""
    text = (RESULTS / f"quality-{name}.txt").read_text()
    code = re.search(r"curate code (\w+)", text)
    date = re.search(r"date: (\S+)", text)
    header = f"{code.group(1) if code else '?'}, {date.group(1) if date else '?'}"
    rows: dict[tuple[str, str], list[str]] = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.split(" | ")]
        if len(cells) != 8 or cells[0] != name:
            continue
        _, method, groups, selection, wg, avg, gap, _ = cells
        no_labels = not selection.startswith("true") and "true val groups" not in groups
        if method == "erm":  # plain ERM selects on mean accuracy: the same run in both tables
            for mode in ("labels", "none"):
                rows[(method, mode)] = [groups, wg, avg, gap]
            continue
        rows[(method, "none" if no_labels and selection.startswith("val pseudo") else "labels")] = [
            groups,
            wg,
            avg,
            gap,
        ]
    return header, rows


def table(mode: str) -> list[str]:
    """One Markdown table: every method measured in ``mode``, a column per benchmark."""
    found = {b: read_rows(b) for b in BENCHMARKS if (RESULTS / f"quality-{b}.txt").exists()}
    methods: list[str] = []
    for _, rows in found.values():
        methods += [m for (m, md) in rows if md == mode and m not in methods]
    head = "| method | train groups | " + " | ".join(f"{b} ({h})" for b, (h, _) in found.items()) + " |"
    lines = [head, "|" + "---|" * (2 + len(found))]
    for m in methods:
        groups = next(r[(m, mode)][0] for _, r in found.values() if (m, mode) in r)
        cells = []
        for _, rows in found.values():
            r = rows.get((m, mode))
            cells.append("-" if r is None else f"{r[1].split(' ± ')[0]} / {r[2].split(' ± ')[0]} ({r[3]})")
        lines.append(f"| {m} | {SHORT_GROUPS.get(groups, groups)} | " + " | ".join(cells) + " |")
    return lines


def targets() -> list[str]:
    """Issue 14's quality targets per benchmark: label-free prune, mix and balance close >= 90% of the
    ERM -> oracle gap with val-group selection and >= 75% with none; contrastive beats ERM on its own
    data (the oracle manifest: the true groups sampled uniformly)."""
    found = {b: read_rows(b)[1] for b in BENCHMARKS if (RESULTS / f"quality-{b}.txt").exists()}
    lines = ["| target | " + " | ".join(found) + " |", "|" + "---|" * (1 + len(found))]
    for mode, need, what in (
        ("labels", 0.9, "with val-group selection, >= 90%"),
        ("none", 0.75, "no group labels, >= 75%"),
    ):
        cells = []
        for rows in found.values():
            gaps = [rows[(m, mode)][3] if (m, mode) in rows else "-" for m in ("prune", "mix", "balance")]
            met = all(g != "-" and float(g.rstrip("%")) / 100 >= need for g in gaps)
            cells.append(" / ".join(gaps) + (" met" if met else " **not met**"))
        lines.append(f"| prune / mix / balance {what} | " + " | ".join(cells) + " |")
    cells = []
    for rows in found.values():
        c, o = rows.get(("contrastive", "labels")), rows.get(("oracle", "labels"))
        if c is None or o is None:
            cells.append("-")
            continue
        cw, ow = float(c[1].split(" ± ")[0]), float(o[1].split(" ± ")[0])
        cells.append(f"{cw:.3f} vs {ow:.3f}" + (" met" if cw > ow else " **not met**"))
    lines.append("| contrastive beats ERM on the same data (oracle), test WGA | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    print("Model selection on **true val groups** (plain ERM: mean val accuracy):\n")
    print("\n".join(table("labels")))
    print("\nModel selection on **val pseudo-groups** (no group labels anywhere):\n")
    print("\n".join(table("none")))
    print("\nTargets (issue 14; 3 seeds, means):\n")
    print("\n".join(targets()))


if __name__ == "__main__":
    main()
