"""``curate run``: every name, option, config section, key and value, and the run folder checked before
the first expensive step (one line, nothing written); a run folder another run holds; a damaged
cached embedding matrix read as one clean error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.corpus._corpus import Case, dataset

_HELD: list[Any] = []  # locks held by a case's setup, standing for a run in another process


def _data(root: Path) -> dict[str, str]:
    return {"data": str(dataset(root) / "metadata.csv")}


def _toml(text: str) -> Any:
    def setup(root: Path) -> dict[str, str]:
        (root / "run.toml").write_text(text)
        return _data(root)

    return setup


def _no_groups(root: Path) -> dict[str, str]:
    """The dataset as a plain table without its spurious attribute: no group labels."""
    import polars as pl

    data = dataset(root)
    cols = {"id": "sample_id", "filename": "path", "y": "label", "split": "split"}
    frame = pl.read_csv(data / "metadata.csv").select(pl.col(k).alias(v) for k, v in cols.items())
    frame.write_csv(data / "samples.csv")
    return {"data": str(data / "samples.csv")}


def _held(root: Path) -> dict[str, str]:
    """A run into ``{root}/o`` holding its lock (as another ``curate run`` would)."""
    from filelock import FileLock

    names = _data(root)
    lock = FileLock(root / ".o.lock")
    lock.acquire()
    _HELD.append(lock)
    return names


def _not_a_run(root: Path) -> dict[str, str]:
    (root / "docs").mkdir()
    (root / "docs" / "notes.txt").write_text("mine")
    return _data(root)


def _out_is_file(root: Path) -> dict[str, str]:
    (root / "o").write_text("a file")
    return _data(root)


def _truncated_embeddings(root: Path) -> dict[str, str]:
    """A workspace whose cached embedding matrix was cut short (a full disk, a copy interrupted)."""
    import numpy as np
    import polars as pl

    from curate import api
    from curate.data.workspace import Workspace
    from curate.embed import EmbeddingTable

    table = api.load_dataset(dataset(root) / "metadata.csv")
    ids = pl.Series("sample_id", table.frame["sample_id"].to_list())
    ws = Workspace(root / "ws")
    folder = EmbeddingTable(ids, np.ones((len(ids), 8), dtype=np.float32), {"encoder": "e"}).save(ws.path / "embed/e")
    ws.bind(table).record("embed", "e", folder)
    matrix = folder / "embeddings.npy"
    matrix.write_bytes(matrix.read_bytes()[:-512])
    return {"ws": str(ws.path)}


def _run(*extra: str) -> list[str]:
    return ["run", "{data}", "-m", "erm", "--out", "{root}/o", *extra]


def _config(*extra: str) -> list[str]:
    return _run("--config", "{root}/run.toml", *extra)


CASES = [
    Case(
        "run-typo-in-second-method-before-any-work",
        ["run", "{data}", "-m", "erm", "-m", "prunee", "--out", "{root}/o"],
        2,
        "unknown method 'prunee'; did you mean 'prune'?",
        setup=_data,
    ),
    Case("run-unknown-method", _run("-m", "ermm"), 2, "did you mean 'erm'?", setup=_data),
    Case(
        "run-bad-backbone",
        _run("--backbone", "netwrok"),
        2,
        "'backbone' must be one of auto, network, head",
        setup=_data,
    ),
    Case("run-bad-select-on", _run("--select-on", "val"), 2, "'select_on' must be one of", setup=_data),
    Case("run-bad-device", _run("--device", "gpu"), 2, "'device' must be one of auto, cpu, cuda", setup=_data),
    Case(
        "run-unknown-encoder",
        _run("--encoder", "efficientnet-lite9"),
        2,
        "did you mean 'efficientnet-lite0'?",
        setup=_data,
    ),
    Case(
        "run-config-unknown-section",
        _config(),
        2,
        "unknown section [selct]; did you mean 'select'?",
        setup=_toml("[selct]\nfraction = 0.3\n"),
    ),
    Case(
        "run-config-unknown-key",
        _config(),
        2,
        "[select] unknown key 'fractoin'; did you mean 'fraction'?",
        setup=_toml("[select]\nfractoin = 0.3\n"),
    ),
    Case(
        "run-config-value-of-wrong-type",
        _config(),
        2,
        '[select] fraction: expected a float in (0, 1), got "half"',
        setup=_toml('[select]\nfraction = "half"\n'),
    ),
    Case(
        "run-config-value-out-of-range",
        _config(),
        2,
        "[select] fraction: expected a float in (0, 1), got 1.5",
        setup=_toml("[select]\nfraction = 1.5\n"),
    ),
    Case(
        "run-config-float-for-an-integer",
        _config(),
        2,
        "[finetune] epochs: expected an integer >= 1",
        setup=_toml("[finetune]\nepochs = 1.5\n"),
    ),
    Case(
        "run-config-bool-for-a-number",
        _config(),
        2,
        "[dynamics] lr: expected a float > 0, got true",
        setup=_toml("[dynamics]\nlr = true\n"),
    ),
    Case(
        "run-config-unknown-detector",
        _config(),
        2,
        "[detect] detector: unknown detector \"knm\"; did you mean 'knn'?",
        setup=_toml('[detect]\ndetector = "knm"\n'),
    ),
    Case(
        "run-config-section-not-a-table",
        _config(),
        2,
        "[select] must be a table of settings, got 3",
        setup=_toml("select = 3\n"),
    ),
    Case(
        "run-method-given-twice",
        ["run", "{data}", "-m", "erm", "-m", "erm", "--out", "{root}/o"],
        2,
        "method 'erm' given more than once",
        setup=_data,
    ),
    Case("run-config-not-toml", _config(), 2, "run.toml: not valid TOML", setup=_toml("[finetune\nepochs=")),
    Case(
        "run-config-key-of-another-selector-is-fine-but-a-typo-is-not",
        ["run", "{data}", "-m", "erm", "-m", "prune", "--out", "{root}/o", "--config", "{root}/run.toml"],
        2,
        "[finetune] unknown key 'epoch'; did you mean 'epochs'?",
        setup=_toml("[select]\nfraction = 0.3\n\n[finetune]\nepoch = 3\n"),
    ),
    Case("run-method-needs-group-labels", _run("-m", "oracle"), 1, "needs true group labels", setup=_no_groups),
    Case(
        "run-method-needs-group-labels-checked-for-every-method-first",
        ["run", "{data}", "-m", "erm", "-m", "groupdro", "--out", "{root}/o"],
        1,
        "method 'groupdro' needs true group labels",
        setup=_no_groups,
    ),
    Case(
        "run-out-held-by-another-run",
        _run("--device", "cpu"),
        1,
        "another curate run is writing to this folder: {root}/o",
        setup=_held,
    ),
    Case(
        "run-out-holds-files-that-are-not-a-run",
        ["run", "{data}", "-m", "erm", "--out", "{root}/docs"],
        2,
        "holds files that are not a curate run",
        setup=_not_a_run,
    ),
    Case("run-out-is-a-file", _run(), 2, "is a file; pick a folder for --out", setup=_out_is_file),
    Case(
        "truncated-cached-embeddings-one-line",
        ["detect", "{ws}", "--detector", "knn"],
        1,
        "embeddings.npy: cannot read the embedding matrix",
        setup=_truncated_embeddings,
    ),
]
