"""Usage errors, unknown names and literal error text: one line, exit 2 for usage, no traceback."""

from __future__ import annotations

from pathlib import Path

from tests.corpus._corpus import Case, dataset


def _data(root: Path) -> dict[str, str]:
    return {"data": str(dataset(root) / "metadata.csv")}


def _bracket_id(root: Path) -> dict[str, str]:
    """A metadata file whose first id holds rich markup and whose image is missing."""
    data = dataset(root)
    meta = data / "metadata.csv"
    lines = meta.read_text().splitlines()
    header = lines[0].split(",")
    first = lines[1].split(",")
    first[header.index("id")] = "[bold]img[/bold]9"
    first[header.index("filename")] = "missing/[red]x.png"
    lines[1] = ",".join(first)
    meta.write_text("\n".join(lines) + "\n")
    return {"data": str(meta)}


CASES = [
    Case("usage-seed-not-int", ["run", "x", "-m", "erm", "--out", "{root}/o", "--seed", "abc"], 2, "'--seed'"),
    Case("usage-missing-out", ["run", "x", "-m", "erm"], 2, "Missing option '--out'"),
    Case("usage-unknown-option", ["embed", "x", "--colour", "red"], 2, "No such option: --colour"),
    Case("usage-unknown-command", ["embedd"], 2, "No such command 'embedd'"),
    Case("usage-missing-argument", ["list"], 2, "Missing argument"),
    Case("unknown-registry", ["list", "benchmarkz"], 2, "did you mean 'benchmarks'"),
    Case("debug-after-the-command-is-accepted", ["list", "benchmarks", "--debug"], 0, "digits-color"),
    Case(
        "unknown-benchmark",
        ["datasets", "make", "digits-colour", "--out", "{root}/x"],
        2,
        "did you mean 'digits-color'",
    ),
    Case("missing-dataset", ["datasets", "check", "{root}/nope.csv"], 1, "nope.csv"),
    Case("markup-in-id-printed-literally", ["datasets", "check", "{data}"], 1, "missing/[red]x.png", setup=_bracket_id),
    Case(
        "markup-closing-tag-in-id-does-not-crash",
        ["datasets", "check", "{data}"],
        1,
        "[bold]img[/bold]9",
        setup=_bracket_id,
    ),
    Case("help-keeps-toml-names", ["run", "--help"], 0, "[embed] [dynamics]"),
    Case("check-ok", ["datasets", "check", "{data}"], 0, "OK", setup=_data),
]
