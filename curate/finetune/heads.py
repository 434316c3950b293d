"""Training on a manifest: ERM, GroupDRO and DFR, with a head on frozen embeddings (``backbone="head"``)
or a small CNN trained from scratch on the manifest's images (``backbone="cnn"``).

* ``erm`` — weighted cross-entropy over the manifest's rows (its weights and mixing pairs are the
  curation); JTT's second stage is ``erm`` on a ``jtt`` manifest (its error set upweighted).
* ``groupdro`` — Sagawa et al. (ICLR 2020), online algorithm: group weights
  ``q_g ← q_g·exp(η·loss_g)``, normalised, loss ``Σ_g q_g·loss_g``; ``η`` = 0.01 (their default
  step size); groups = the manifest's true ``group`` or its ``pseudo_group``.
* ``dfr`` — Kirichenko et al. (ICLR 2023): keep the ERM features, retrain only the last layer
  with ℓ1 logistic regression on a group-balanced held-out set (the val split); ``C`` from
  {1, .7, .3, .1, .07, .03, .01} chosen on one half of val by worst-group accuracy on the other;
  the final head averages heads fit on several group-balanced draws.

Model selection: the epoch with the best validation worst-group accuracy (true groups when the
dataset has them, else pseudo-groups; the result says which). With a run folder, the loop keeps
checkpoints (a rerun resumes) and records per-sample dynamics of the manifest's rows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from curate._core import schema as S
from curate._core.cache import fingerprint
from curate._core.seed import derive_seed
from curate.data.table import SampleTable
from curate.embed import EmbeddingTable
from curate.errors import ConfigError, InputDataError
from curate.eval import EvalResult, evaluate_predictions
from curate.finetune._loop import claim_run, eval_ids, fit_selected, prediction_frame
from curate.finetune.images import IMAGE_SIZE, load_images, small_cnn
from curate.manifest import MIX_LAMBDA, MIX_WITH, Manifest
from curate.train import ERM, HEADS, TensorBatches, TrainConfig, make_head

METHODS = ("erm", "groupdro", "dfr")
BACKBONES = ("head", "cnn")
DFR_CS = (1.0, 0.7, 0.3, 0.1, 0.07, 0.03, 0.01)
DFR_HEADS = 10


@dataclass(frozen=True, kw_only=True)
class FinetuneConfig:
    """Head training settings; ``groups``: ``true`` or ``pseudo`` (GroupDRO's groups)."""

    method: str = "erm"
    backbone: str = "head"
    head: str = "linear"
    hidden: int = 256
    epochs: int = 30
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 128
    dro_eta: float = 0.01
    groups: str = "true"
    image_size: int = IMAGE_SIZE
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError.bad_param("FinetuneConfig()", "method", f"one of {METHODS}", self.method)
        if self.backbone not in BACKBONES:
            raise ConfigError.bad_param("FinetuneConfig()", "backbone", f"one of {BACKBONES}", self.backbone)
        if self.head not in HEADS:
            raise ConfigError.bad_param("FinetuneConfig()", "head", f"one of {HEADS}", self.head)
        if self.groups not in ("true", "pseudo"):
            raise ConfigError.bad_param("FinetuneConfig()", "groups", "'true' or 'pseudo'", self.groups)
        self.train_config()

    def train_config(self) -> TrainConfig:
        """The loop settings (the best epoch is picked by a hook on validation WGA)."""
        return TrainConfig(
            epochs=self.epochs, lr=self.lr, weight_decay=self.weight_decay, batch_size=self.batch_size, seed=self.seed
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (provenance)."""
        return asdict(self)


class GroupDRO:
    """Online GroupDRO step (Sagawa et al. 2020): exponentiated-gradient group weights ``q``."""

    def __init__(self, model: Any, n_groups: int, eta: float) -> None:
        import torch

        self.model = model
        self.eta = eta
        self.q = torch.full((n_groups,), 1.0 / n_groups)

    def step(self, batch: dict[str, Any]) -> dict[str, Any]:
        import torch
        import torch.nn.functional as F

        logits, feats = self.model(batch["x"])
        losses = F.cross_entropy(logits, batch["label"], reduction="none")
        g = batch["group"]
        n = len(self.q)
        counts = torch.bincount(g, minlength=n).float()
        group_loss = torch.zeros(n, device=losses.device).scatter_add(0, g, losses) / counts.clamp(min=1)
        present = counts > 0
        with torch.no_grad():
            self.q = self.q.to(losses.device)
            self.q[present] *= torch.exp(self.eta * group_loss[present].detach())
            self.q /= self.q.sum()
        return {"loss": (self.q * group_loss).sum(), "logits": logits, "features": feats}


@dataclass(frozen=True)
class FinetuneResult:
    """The selected model's metrics and predictions."""

    val: EvalResult
    test: EvalResult
    best_epoch: int
    predictions: pl.DataFrame
    config: dict[str, Any]


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


def _outputs(model: Any, x: np.ndarray, which: int, chunk: int = 1024) -> np.ndarray:
    import torch

    model.eval()
    with torch.inference_mode():
        return torch.cat([model(torch.from_numpy(x[s : s + chunk]))[which] for s in range(0, len(x), chunk)]).numpy()


def _predict(model: Any, x: np.ndarray) -> np.ndarray:
    return _outputs(model, x, 0).argmax(1)


def _features(model: Any, x: np.ndarray) -> np.ndarray:
    return _outputs(model, x, 1)


def _inputs(
    manifest: Manifest, table: SampleTable, emb: EmbeddingTable | None, cfg: FinetuneConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str], list[str]]:
    """Training rows (mixing applied), val and test inputs for the configured backbone."""
    val_ids, test_ids = eval_ids(table)
    if cfg.backbone == "cnn":

        def pixels(ids: list[str]) -> np.ndarray:
            return load_images(table, ids, size=cfg.image_size)

        return mix_rows(manifest, pixels), pixels(val_ids), pixels(test_ids), val_ids, test_ids
    if emb is None:
        raise InputDataError("a head on embeddings needs the embeddings", file=table.where, fix="run `curate embed`")
    train_x_raw = _rows_matrix(emb, table.split("train").frame[S.SAMPLE_ID].to_list())
    mu, sd = train_x_raw.mean(0), train_x_raw.std(0)
    sd = np.where(sd > 1e-8, sd, 1.0)
    xv = (_rows_matrix(emb, val_ids) - mu) / sd
    xt = (_rows_matrix(emb, test_ids) - mu) / sd
    return manifest_inputs(manifest, emb, mu, sd), xv, xt, val_ids, test_ids


def train_head(
    manifest: Manifest,
    table: SampleTable,
    emb: EmbeddingTable | None,
    cfg: FinetuneConfig,
    *,
    pseudo_groups: pl.DataFrame | None = None,
    out: str | Path | None = None,
) -> FinetuneResult:
    """Train on the manifest's rows, select the epoch by validation WGA, evaluate on test.

    ``emb`` may be None for ``backbone="cnn"``. With ``out``: checkpoints (resumed by a rerun) and
    per-sample dynamics of the manifest's rows are written there.

    Raises:
        InputDataError: GroupDRO without groups, or DFR without true groups on the val split.
    """
    import torch

    f = manifest.frame
    if out is not None:
        emb_id = None if emb is None else emb.meta
        claim_run(Path(out), fingerprint("finetune", f, cfg.to_dict(), table.fingerprint(), emb_id))
    x, xv, xt, val_ids, test_ids = _inputs(manifest, table, emb, cfg)
    y = f[S.LABEL].to_numpy().astype(np.int64)
    w = f[S.WEIGHT].to_numpy().astype(np.float32)
    n_classes = max(table.n_classes, int(y.max()) + 1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(cfg.seed, "finetune-init"))
        model = (
            small_cnn(n_classes)
            if cfg.backbone == "cnn"
            else make_head(cfg.head, x.shape[1], n_classes, hidden=cfg.hidden)
        )
    extra: dict[str, Any] = {}
    method: Any = ERM(model)
    if cfg.method == "groupdro":
        key = S.GROUP if cfg.groups == "true" else S.PSEUDO_GROUP
        if f[key].null_count():
            raise InputDataError(
                f"GroupDRO needs the manifest's {key!r} column filled",
                file=manifest.method,
                fix="use groups='pseudo' with a discovery, or a dataset with group labels",
            )
        groups = f[key].to_numpy().astype(np.int64)
        extra["group"] = torch.from_numpy(groups)
        method = GroupDRO(model, int(groups.max()) + 1, cfg.dro_eta)
    batches = TensorBatches(
        torch.from_numpy(x),
        torch.from_numpy(y),
        batch_size=cfg.batch_size,
        seed=cfg.seed,
        weight=torch.from_numpy(w),
        extra=extra,
    )
    best_epoch = fit_selected(
        method,
        batches,
        cfg.train_config(),
        lambda: evaluate_predictions(
            table, prediction_frame(val_ids, _predict(model, xv)), split="val", pseudo_groups=pseudo_groups
        ),
        out=out,
        record=(f[S.SAMPLE_ID].to_list(), y, n_classes),
        desc=f"{cfg.method} ({cfg.backbone})",
    )
    if cfg.method == "dfr":
        pred_v, pred_t = _dfr(model, table, xv, xt, val_ids, cfg.seed)
    else:
        pred_v, pred_t = _predict(model, xv), _predict(model, xt)
    val = evaluate_predictions(table, prediction_frame(val_ids, pred_v), split="val", pseudo_groups=pseudo_groups)
    test = evaluate_predictions(table, prediction_frame(test_ids, pred_t), split="test", pseudo_groups=pseudo_groups)
    preds = pl.concat([prediction_frame(val_ids, pred_v), prediction_frame(test_ids, pred_t)])
    return FinetuneResult(val, test, best_epoch, preds, cfg.to_dict())


def _dfr(
    model: Any, table: SampleTable, xv: np.ndarray, xt: np.ndarray, val_ids: list[str], seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """DFR^val: ℓ1 logistic regression on group-balanced val features; C by WGA on the other half."""
    from sklearn.linear_model import LogisticRegression

    if not table.has_groups:
        raise InputDataError(
            "DFR retrains on group-balanced validation data and needs true val groups",
            file=table.where,
            fix="use a dataset with group labels",
        )
    hv, ht = _features(model, xv), _features(model, xt)
    val = table.split("val").frame
    groups = pl.DataFrame({S.SAMPLE_ID: val_ids}).join(
        val.select(S.SAMPLE_ID, S.LABEL, S.GROUP), on=S.SAMPLE_ID, maintain_order="left"
    )
    g, y = groups[S.GROUP].to_numpy(), groups[S.LABEL].to_numpy()
    rng = np.random.default_rng(derive_seed(seed, "dfr"))
    half = rng.random(len(y)) < 0.5

    def balanced(idx: np.ndarray) -> np.ndarray:
        gs = np.unique(g[idx])
        m = min(int((g[idx] == k).sum()) for k in gs)
        return np.concatenate([rng.choice(idx[g[idx] == k], size=m, replace=False) for k in gs])

    def wga(pred: np.ndarray, idx: np.ndarray) -> float:
        return min(float((pred[g[idx] == k] == y[idx][g[idx] == k]).mean()) for k in np.unique(g[idx]))

    a, b = np.flatnonzero(half), np.flatnonzero(~half)
    scores = {}
    for c in DFR_CS:
        sel = balanced(a)
        clf = LogisticRegression(l1_ratio=1.0, C=c, solver="liblinear").fit(hv[sel], y[sel])
        scores[c] = wga(clf.predict(hv[b]), b)
    best_c = max(DFR_CS, key=lambda c: (scores[c], c))
    coefs, intercepts = [], []
    for _ in range(DFR_HEADS):
        sel = balanced(np.arange(len(y)))
        clf = LogisticRegression(l1_ratio=1.0, C=best_c, solver="liblinear").fit(hv[sel], y[sel])
        coefs.append(clf.coef_)
        intercepts.append(clf.intercept_)
    coef, intercept = np.mean(coefs, axis=0), np.mean(intercepts, axis=0)

    def predict(h: np.ndarray) -> np.ndarray:
        z = h @ coef.T + intercept
        return (z[:, 0] > 0).astype(np.int64) if z.shape[1] == 1 else z.argmax(1)

    return predict(hv), predict(ht)
