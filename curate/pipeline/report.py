"""Stage 7, report: Markdown with plots and a self-contained HTML page comparing fine-tune runs, and
the workspace's discovery."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from curate._core import schema as S
from curate.data.workspace import Workspace
from curate.detect import Discovery
from curate.embed import EmbeddingTable
from curate.errors import InputDataError
from curate.eval import write_report
from curate.eval.findings import top_flagged
from curate.eval.html_report import TOP, write_html_report
from curate.pipeline.detect import artifact_tokens, current_detector, detection_auroc, load_discovery

logger = logging.getLogger(__name__)

NEIGHBORS = 5  # nearest neighbours shown for each top-flagged sample
MANIFEST_FILE = "manifest.parquet"


def nearest_neighbors(
    matrix: np.ndarray, ids: list[str], queries: list[str], k: int = NEIGHBORS
) -> dict[str, list[str]]:
    """The ``k`` nearest other samples (cosine, FAISS) of each of ``queries`` among ``ids``."""
    from curate.index import KnnIndex

    if len(ids) < 2 or not queries:
        return {}
    pos = {sid: i for i, sid in enumerate(ids)}
    index = KnnIndex().fit(np.asarray(matrix, dtype=np.float32))
    q = [s for s in queries if s in pos]
    _, idx = index.search(np.asarray(matrix[[pos[s] for s in q]], dtype=np.float32), min(k + 1, len(ids)))
    return {s: [ids[j] for j in row if j >= 0 and ids[j] != s][:k] for s, row in zip(q, idx, strict=True)}


def check_runs_match(runs: list[str | Path], fingerprint: str, workspace: Path) -> None:
    """Refuse a run trained on another dataset than the workspace's (its manifest's provenance
    records the dataset's fingerprint; runs without one are not checked).

    Raises:
        InputDataError: a run's dataset is not the workspace's.
    """
    import json

    for r in runs:
        p = Path(r) / "metrics.json"
        try:
            inputs = json.loads(p.read_text()).get("manifest", {}).get("inputs", {})
        except (OSError, ValueError, AttributeError):
            continue  # read_runs names the problem
        seen = inputs.get("dataset") if isinstance(inputs, dict) else None
        if seen is not None and seen != fingerprint:
            raise InputDataError(
                f"this run was trained on another dataset than the workspace {workspace}'s",
                file=r,
                fix="pass the workspace the run was made with (--workspace)",
            )


def report(
    runs: list[str | Path],
    out: str | Path,
    *,
    workspace: str | Path | None = None,
    detector: str | None = None,
) -> Path:
    """Markdown report of fine-tune runs with PNG plots (``out/report.md``) and the HTML report
    (``out/report.html``); with ``workspace``, also its discovery: score histograms, the embedding
    map, and in the HTML page the pseudo-group cards and the top-flagged samples.

    Args:
        runs: run folders (``metrics.json``, and ``manifest.parquet`` when the run wrote one).
        out: the report folder.
        workspace: a workspace with a detection and embeddings.
        detector: which of the workspace's detections to show (default: the current one, the
            latest recorded); the page names it.

    Returns:
        The path of ``report.md``.

    Raises:
        InputDataError: a run without ``metrics.json``, or no detection ``detector`` in the workspace.
    """
    table = scores = matrix = ids = None
    discovery: Discovery | None = None
    if workspace is not None:
        ws = Workspace(workspace)
        table = ws.table()
        check_runs_match(runs, table.fingerprint(), Path(workspace))
        if detector is not None or ws.outputs("detect"):
            discovery = load_discovery(ws, current_detector(ws, detector))  # given, else the latest recorded
            scores = discovery.scores
            if ws.outputs("embed"):
                emb = EmbeddingTable.load(ws.lookup("embed", next(iter(ws.outputs("embed")))))
                ids = scores[S.SAMPLE_ID].to_list()
                matrix = emb.select(ids, what="discovery").matrix
    md = write_report(
        [Path(r) for r in runs],
        out,
        table=table,
        scores=scores,
        embeddings=matrix,
        embedding_ids=ids,
        detector=None if discovery is None else discovery.detector,
        artifacts=None if table is None else artifact_tokens(table, discovery),
    )
    neighbors: dict[str, list[str]] = {}
    detection: dict[str, Any] | None = None
    if discovery is not None and table is not None:
        detection = {"config": discovery.config, "extra": discovery.extra, "auroc": None}
        if table.has_groups:
            detection["auroc"] = detection_auroc(table, discovery)
        if matrix is not None and ids is not None:
            flagged = top_flagged(discovery.scores, table, top=TOP)[S.SAMPLE_ID].to_list()
            neighbors = nearest_neighbors(matrix, ids, flagged)
    manifests = {
        Path(r).name: pl.read_parquet(Path(r) / MANIFEST_FILE) for r in runs if (Path(r) / MANIFEST_FILE).exists()
    }
    html = write_html_report(
        [Path(r) for r in runs],
        out,
        table=table,
        scores=scores,
        clusters=None if discovery is None else discovery.clusters,
        detector=None if discovery is None else discovery.detector,
        detection=detection,
        embeddings=matrix,
        embedding_ids=ids,
        neighbors=neighbors,
        manifests=manifests,
    )
    logger.info("HTML report: %s", html)
    return md
