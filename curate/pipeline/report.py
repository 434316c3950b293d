"""Stage 7, report: Markdown with plots comparing fine-tune runs, and the workspace's discovery."""

from __future__ import annotations

from pathlib import Path

from curate._core import schema as S
from curate.data.workspace import Workspace
from curate.embed import EmbeddingTable
from curate.eval import write_report
from curate.pipeline.detect import load_discovery


def report(runs: list[str | Path], out: str | Path, *, workspace: str | Path | None = None) -> Path:
    """Markdown report of fine-tune runs with PNG plots; with ``workspace``, also the discovery's score
    histograms by true group and a 2-D map of the train embeddings by pseudo-group and true group."""
    table = scores = matrix = ids = None
    if workspace is not None:
        ws = Workspace(workspace)
        table = ws.table()
        if ws.outputs("detect"):
            scores = load_discovery(ws, next(iter(ws.outputs("detect")))).scores
            emb = EmbeddingTable.load(ws.lookup("embed", next(iter(ws.outputs("embed")))))
            ids = scores[S.SAMPLE_ID].to_list()
            matrix = emb.select(ids, what="discovery").matrix
    return write_report([Path(r) for r in runs], out, table=table, scores=scores, embeddings=matrix, embedding_ids=ids)
