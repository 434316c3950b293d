"""Proxy training on frozen embeddings: a linear or MLP head per run, recorded epoch by epoch.

The head trains on the ``train`` split only, on embeddings standardised with train statistics.
Each independent run (``runs`` > 1 for EL2N averaged over initialisations, as Paul et al. do) has
its own seed stream; initialisation never touches the global torch RNG. Shards and a checkpoint
per run make an interrupted call resume after its last finished epoch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from curate._core import schema as S
from curate._core.seed import derive_seed
from curate.data.table import SampleTable
from curate.dynamics.log import EVAL_PASS, OUTPUTS, DynamicsLog, output_epochs
from curate.dynamics.recorder import DynamicsRecorder, EvalPass, eval_epochs
from curate.embed.table import EmbeddingTable
from curate.errors import ConfigError, InputDataError
from curate.train import ERM, HEAD_TRAINING, HEADS, TensorBatches, TrainConfig, fit, make_head


@dataclass(frozen=True, kw_only=True)
class ProxyConfig:
    """Proxy head and optimisation settings (defaults: a linear probe trained as a run's final head,
    :data:`curate.train.HEAD_TRAINING`); an eval-mode pass over the train rows at ``eval_fraction``
    of training (0.4: the data-pruning authors' EL2N epoch, index 9 of 25) is recorded in ``eval/``."""

    head: str = "linear"
    hidden: int = 256
    epochs: int = HEAD_TRAINING["epochs"]
    lr: float = HEAD_TRAINING["lr"]
    weight_decay: float = HEAD_TRAINING["weight_decay"]
    batch_size: int = HEAD_TRAINING["batch_size"]
    optimizer: str = HEAD_TRAINING["optimizer"]
    scheduler: str = HEAD_TRAINING["scheduler"]
    max_grad_norm: float | None = HEAD_TRAINING["max_grad_norm"]
    runs: int = 1
    eval_fraction: float = 0.4
    seed: int = 0

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise ConfigError.bad_param("ProxyConfig()", "head", f"one of {HEADS}", self.head)
        if self.runs < 1:
            raise ConfigError.bad_param("ProxyConfig()", "runs", "an integer >= 1", self.runs)
        if not 0.0 < self.eval_fraction <= 1.0:
            raise ConfigError.bad_param("ProxyConfig()", "eval_fraction", "a float in (0, 1]", self.eval_fraction)
        self.train_config(0)  # validates the optimisation fields

    def train_config(self, run: int) -> TrainConfig:
        """The loop settings of one run."""
        return TrainConfig(
            epochs=self.epochs,
            lr=self.lr,
            weight_decay=self.weight_decay,
            batch_size=self.batch_size,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            max_grad_norm=self.max_grad_norm,
            seed=derive_seed(self.seed, "proxy-run", run),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (cache key and provenance)."""
        return asdict(self)


def train_inputs(emb: EmbeddingTable, table: SampleTable) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Train-split ids, standardised embeddings and labels, aligned by ``sample_id``.

    Raises:
        IdMismatchError: a train sample has no embedding.
        InputDataError: the train split is empty or has a single class.
    """
    train = table.split("train").frame
    if train.height == 0:
        raise InputDataError("the train split is empty", file=table.where, fix="add train rows")
    labels = train[S.LABEL].to_numpy().astype(np.int64, copy=True)
    if len(np.unique(labels)) < 2:
        raise InputDataError(
            "the train split holds a single class", file=table.where, column=S.LABEL, fix="add another class"
        )
    x = np.asarray(emb.select(train[S.SAMPLE_ID], what="train split").matrix, dtype=np.float32)
    mu, sd = x.mean(0), x.std(0)
    x = (x - mu) / np.where(sd > 1e-8, sd, 1.0)
    return train[S.SAMPLE_ID].to_list(), x, labels


def _head_and_batches(
    x: np.ndarray, labels: np.ndarray, n_classes: int, cfg: ProxyConfig, run: int, device: str
) -> Any:
    """The initialised head and batch stream of one run (initialisation never touches the global RNG)."""
    import torch

    tcfg = cfg.train_config(run)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(tcfg.seed, "init"))
        head = make_head(cfg.head, x.shape[1], n_classes, hidden=cfg.hidden).to(device)
    batches = TensorBatches(
        torch.from_numpy(x), torch.from_numpy(labels).long(), batch_size=tcfg.batch_size, seed=tcfg.seed, device=device
    )
    return tcfg, head, batches


def train_proxy(
    emb: EmbeddingTable,
    table: SampleTable,
    cfg: ProxyConfig,
    folder: str | Path,
    *,
    device: str = "cpu",
    record: bool = True,
) -> DynamicsLog | None:
    """Train ``cfg.runs`` proxy heads on the train split and record their dynamics under ``folder``.

    Args:
        emb: embeddings covering every train sample.
        table: the dataset (labels and splits).
        cfg: proxy settings.
        folder: where shards (``run=R/epoch=E.parquet``) and checkpoints go.
        device: a resolved torch device.
        record: attach the recorder (``False`` only to measure its overhead; checkpoints are kept).

    Returns:
        The recorded :class:`DynamicsLog` (``None`` when ``record`` is false).
    """
    import torch

    ids, x, labels = train_inputs(emb, table)
    n_classes = max(table.n_classes, int(labels.max()) + 1)
    folder = Path(folder)
    for run in range(cfg.runs):
        tcfg, head, batches = _head_and_batches(x, labels, n_classes, cfg, run, device)
        static = np.linalg.norm(x, axis=1) if cfg.head == "linear" else None  # a linear head's input never changes
        recorder = DynamicsRecorder(folder, ids, labels, n_classes, run=run, device=device, static_feat_norm=static)
        evals = DynamicsRecorder(folder / EVAL_PASS, ids, labels, n_classes, run=run, device=device)
        early = DynamicsRecorder(folder / OUTPUTS, ids, labels, n_classes, run=run, device=device, keep_probs=True)

        def predict(head: Any = head, xt: Any = torch.from_numpy(x)) -> tuple[np.ndarray, np.ndarray]:
            head.eval()
            with torch.inference_mode():
                logits, feats = head(xt.to(device))
            return logits.float().cpu().numpy(), feats.float().cpu().numpy()

        targets = [(evals, eval_epochs(tcfg.epochs, (cfg.eval_fraction,))), (early, output_epochs(tcfg.epochs))]
        passes = EvalPass(predict, targets, tcfg.epochs, head.train)
        fit(
            ERM(head),
            batches,
            tcfg,
            hooks=[recorder, passes] if record else [],
            checkpoint_dir=folder / f"run={run}",
            desc=f"proxy run {run}",
            device=device,
        )
    return DynamicsLog.read(folder) if record else None


def proxy_outputs(
    emb: EmbeddingTable, table: SampleTable, cfg: ProxyConfig, epochs: int, *, run: int = 0, device: str = "cpu"
) -> tuple[list[str], np.ndarray]:
    """Softmax outputs on the train split of run ``run``'s proxy after ``epochs`` epochs.

    The same seeds as :func:`train_proxy`, so this is the recorded run's model at that epoch
    (SPARE clusters early outputs; a recording keeps them itself, so this serves only a recording
    made before curate kept them).

    Returns:
        Train sample ids and an ``(N, C)`` float32 array of probabilities.

    Raises:
        ConfigError: ``cfg``'s rate decays, so a shorter run is not the recorded model at ``epochs``
            (and such a recording, newer, keeps its outputs: the config does not match it).
    """
    import torch

    if cfg.scheduler != "constant":
        raise ConfigError(
            f"this dynamics recording keeps no outputs (made before curate kept them) and the proxy config's"
            f" {cfg.scheduler!r} rate decays, so no shorter run is its model after {epochs} epochs: the config does"
            " not match the recording; record the dynamics again (it keeps the early outputs)"
        )

    ids, x, labels = train_inputs(emb, table)
    n_classes = max(table.n_classes, int(labels.max()) + 1)
    tcfg, head, batches = _head_and_batches(x, labels, n_classes, cfg, run, device)
    fit(ERM(head), batches, replace(tcfg, epochs=max(1, epochs)), desc="proxy outputs", device=device)
    with torch.inference_mode():
        logits, _ = head(torch.from_numpy(x).to(device))
        probs = torch.softmax(logits.float(), dim=1).cpu().numpy()
    return ids, probs
