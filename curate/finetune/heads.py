"""A linear or MLP head trained on the workspace's frozen embeddings (``backbone="head"``): the fast
option, and the default of ``curate run`` on a CPU.

Inputs are embeddings standardised with train statistics; the manifest's weights weight the loss
and its mixing pairs are applied to the embeddings (``λ·partner + (1 − λ)·row``). Model selection:
the epoch with the best validation worst-group accuracy (true groups when the dataset has them,
else pseudo-groups; the result says which). With a run folder, the loop keeps checkpoints (a rerun
resumes) and records per-sample dynamics of the manifest's rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from curate._core import schema as S
from curate._core.cache import fingerprint
from curate._core.seed import derive_seed
from curate.embed import EmbeddingTable
from curate.errors import InputDataError
from curate.finetune._base import FinetuneResult, TrainRequest
from curate.finetune._loop import (
    claim_run,
    classifier_result,
    eval_ids,
    fit_selected,
    make_method,
    prediction_frame,
    unique_rows,
)
from curate.finetune.config import FinetuneConfig
from curate.manifest import MIX_LAMBDA, MIX_WITH, Manifest
from curate.train import TensorBatches, make_head


def _rows_matrix(emb: EmbeddingTable, ids: list[str]) -> np.ndarray:
    return np.asarray(emb.select(ids, what="manifest").matrix, dtype=np.float32)


def manifest_inputs(manifest: Manifest, emb: EmbeddingTable, mu: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """Standardised embeddings of the manifest's rows, mixing pairs applied at the embedding level."""
    return mix_rows(manifest, lambda ids: (_rows_matrix(emb, ids) - mu) / sd)


def mix_rows(manifest: Manifest, rows: Any) -> np.ndarray:
    """``rows(ids)`` for the manifest's rows with its mixing pairs applied: ``λ·partner + (1-λ)·row``."""
    f = manifest.frame
    x = rows(f[S.SAMPLE_ID].to_list())
    mixed = f[MIX_WITH].is_not_null().to_numpy()
    if mixed.any():
        pairs = f.filter(pl.col(MIX_WITH).is_not_null())
        lam = pairs[MIX_LAMBDA].to_numpy().reshape(-1, *([1] * (x.ndim - 1)))
        x[mixed] = lam * rows(pairs[MIX_WITH].to_list()) + (1 - lam) * x[mixed]
    return x


def head_outputs(model: Any, x: np.ndarray, *, device: str = "cpu", chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Eval-mode ``(logits, features)`` of a head over ``x`` (numpy, on the CPU)."""
    import torch

    model.eval()
    with torch.inference_mode():
        outs = [model(torch.from_numpy(x[s : s + chunk]).to(device)) for s in range(0, len(x), chunk)]
    return torch.cat([o[0] for o in outs]).float().cpu().numpy(), torch.cat([o[1] for o in outs]).float().cpu().numpy()


def train_head(request: TrainRequest, cfg: FinetuneConfig) -> FinetuneResult:
    """Train a head on the manifest's rows, select the epoch by validation WGA, evaluate on test.

    Raises:
        InputDataError: no embeddings, GroupDRO without groups, or DFR without true val groups.
    """
    import torch

    table, manifest, emb, dev = request.table, request.manifest, request.embeddings, request.device
    if emb is None:
        raise InputDataError("a head on embeddings needs the embeddings", file=table.where, fix="run `curate embed`")
    settings = cfg.settings(modality=table.modality, device=dev)
    f = manifest.frame
    if request.out is not None:
        claim_run(Path(request.out), fingerprint("finetune", f, cfg.to_dict(), table.fingerprint(), emb.meta))
    val_ids, test_ids = eval_ids(table)
    train_raw = _rows_matrix(emb, table.split("train").frame[S.SAMPLE_ID].to_list())
    mu, sd = train_raw.mean(0), train_raw.std(0)
    sd = np.where(sd > 1e-8, sd, 1.0)
    x = manifest_inputs(manifest, emb, mu, sd)
    xv, xt = (_rows_matrix(emb, val_ids) - mu) / sd, (_rows_matrix(emb, test_ids) - mu) / sd
    y = f[S.LABEL].to_numpy().astype(np.int64)
    w = f[S.WEIGHT].to_numpy().astype(np.float32)
    n_classes = max(table.n_classes, int(y.max()) + 1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(cfg.seed, "finetune-init"))
        model = make_head(cfg.head, x.shape[1], n_classes, hidden=cfg.hidden)
    method, groups = make_method(model, cfg, manifest)
    extra = {} if groups is None else {"group": torch.from_numpy(groups)}
    tcfg = cfg.train_config(settings)
    uniq, uniq_labels, row_index = unique_rows(f)
    batches = TensorBatches(
        torch.from_numpy(x), torch.from_numpy(y), batch_size=tcfg.batch_size, seed=cfg.seed,
        weight=torch.from_numpy(w), extra=extra, device=dev, index=torch.from_numpy(row_index),
    )  # fmt: skip

    def score() -> Any:
        return request.score_val(prediction_frame(val_ids, head_outputs(model, xv, device=dev)[0].argmax(1)))

    best_epoch = fit_selected(
        method, batches, tcfg, score, out=request.out, record=(uniq, uniq_labels, n_classes),
        desc=f"{cfg.method} (head)", device=dev, hooks=request.hooks,
        dynamics=(request.dynamics_dir, request.dynamics_run), select_on=request.select_on,
    )  # fmt: skip
    outputs = {"val": head_outputs(model, xv, device=dev), "test": head_outputs(model, xt, device=dev)}
    return classifier_result(request, cfg, settings, outputs, best_epoch)
