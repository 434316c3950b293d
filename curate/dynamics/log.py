"""``DynamicsLog``: the long table of per-sample, per-epoch training signals, read from epoch shards.

Columns: ``run`` (independent training run), ``epoch`` (0-based), ``sample_id``, ``loss`` (cross
entropy), ``margin`` (true-class logit minus the largest other logit), ``correct`` (argmax is the
label), ``prob_true`` (softmax probability of the label), ``el2n`` (‖softmax − onehot‖₂) and
``feat_norm`` (‖input of the last linear layer‖₂, null when not recorded). A fine-tuned network's
recording also keeps an eval-mode pass with ``probs`` (the softmax vector) at SPARE's candidate
epochs (:data:`OUTPUTS`, :func:`output_epochs`), whose outputs SPARE clusters.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from curate._core import schema as S
from curate.errors import InputDataError

RUN, EPOCH = "run", "epoch"
PROBS = "probs"  # the softmax vector, kept by the early outputs pass only
LOSS, MARGIN, CORRECT, PROB_TRUE, EL2N, FEAT_NORM = "loss", "margin", "correct", "prob_true", "el2n", "feat_norm"
LOG_SCHEMA: dict[str, pl.DataType] = {
    RUN: pl.Int32(),
    EPOCH: pl.Int32(),
    S.SAMPLE_ID: pl.String(),
    LOSS: pl.Float32(),
    MARGIN: pl.Float32(),
    CORRECT: pl.Boolean(),
    PROB_TRUE: pl.Float32(),
    EL2N: pl.Float32(),
    FEAT_NORM: pl.Float32(),
}
SHARD_GLOB = "run=*/epoch=*.parquet"
EVAL_PASS = "eval"  # sub-folder of the eval-mode pass over the train rows (prune's EL2N)
OUTPUTS = "outputs"  # sub-folder of the eval-mode outputs at SPARE's candidate epochs (output_epochs)
EARLY_FRACTION = 0.1  # "early in training": SPARE's clustering epoch, JTT's default T, EL2N's epoch
# SPARE's inference epoch, as shares of the recording: the lab's scripts train their inference model
# 1 or 2 (Waterbirds pretrained, UrbanCars), 3 (Waterbirds from scratch) or 10 to 20 (SpuCoMNIST)
# epochs, chosen per dataset; a recording keeps its eval-mode outputs at each share (30 epochs: after
# 2, 3, 4, 7 and 13 epochs), and `curate run` picks among them on validation, as it picks JTT's T.
SPARE_EPOCH_SHARES = (0.02, 0.05, 0.1, 0.2, 0.4)


def early_epoch_index(n_epochs: int, fraction: float = EARLY_FRACTION) -> int:
    """The 0-based epoch at ``fraction`` of ``n_epochs`` (Paul et al. score EL2N at 10%: epoch 20 of 200)."""
    return min(n_epochs - 1, max(0, round(fraction * n_epochs)))


def output_epochs(n_epochs: int) -> set[int]:
    """The 0-based epochs whose eval-mode softmax a recording of ``n_epochs`` keeps (``outputs/``):
    SPARE's candidate epochs (:data:`SPARE_EPOCH_SHARES`), the early epoch among them."""
    return {early_epoch_index(n_epochs, f) for f in (*SPARE_EPOCH_SHARES, EARLY_FRACTION)}


def epoch_at_fraction(n_epochs: int, fraction: float) -> int:
    """The 0-based epoch after which ``fraction`` of ``n_epochs`` is done: ``round(f·E) − 1``, at least
    0 (0.4 of 25 epochs → index 9, the data-pruning authors' EL2N epoch)."""
    return min(n_epochs - 1, max(0, round(fraction * n_epochs) - 1))


def shard_name(epoch: int) -> str:
    """File name of one epoch's shard."""
    return f"epoch={epoch:04d}.parquet"


@dataclass(frozen=True)
class DynamicsLog:
    """Training dynamics of one or more runs; every run must cover the same epochs.

    ``eval_pass``, when the recording has one, is the log of eval-mode passes over the train rows at
    chosen epochs (the model of that epoch, no augmentation or dropout): the data-pruning authors'
    EL2N comes from there. ``outputs`` (any recording's, a network's or a proxy head's) holds an
    eval-mode pass with the softmax vector (``probs``) at SPARE's candidate epochs
    (:func:`output_epochs`): SPARE clusters the model's outputs there, as its authors do (eval mode
    over the train set), not the training minibatches' logits.
    """

    frame: pl.DataFrame
    eval_pass: DynamicsLog | None = None
    outputs: DynamicsLog | None = None

    def __post_init__(self) -> None:
        missing = [c for c in LOG_SCHEMA if c not in self.frame.columns]
        if missing:
            raise InputDataError(
                f"dynamics log lacks columns {missing}", file="dynamics log", fix="record with curate's recorder"
            )
        nan = self.frame.filter(pl.col(LOSS).is_nan() | pl.col(LOSS).is_null())
        if nan.height:
            r = nan.row(0, named=True)
            raise InputDataError(
                f"NaN loss at run {r[RUN]} epoch {r[EPOCH]}",
                file="dynamics log",
                sample_id=r[S.SAMPLE_ID],
                fix="lower the learning rate and record again",
            )

    @classmethod
    def from_frame(cls, frame: pl.DataFrame) -> DynamicsLog:
        """Cast a frame with the log's columns (``feat_norm`` optional) to the log schema."""
        if FEAT_NORM not in frame.columns:
            frame = frame.with_columns(pl.lit(None, dtype=pl.Float32).alias(FEAT_NORM))
        if RUN not in frame.columns:
            frame = frame.with_columns(pl.lit(0).alias(RUN))
        probs = [pl.col(PROBS).cast(pl.List(pl.Float32))] if PROBS in frame.columns else []
        return cls(frame.select([pl.col(c).cast(t) for c, t in LOG_SCHEMA.items()] + probs))

    @classmethod
    def read(cls, folder: str | Path) -> DynamicsLog:
        """Read every ``run=*/epoch=*.parquet`` shard under ``folder`` (and those of ``folder/eval``
        and ``folder/outputs``, as the eval pass and SPARE's early outputs, when present).

        Raises:
            InputDataError: no shards are there.
        """
        folder = Path(folder)
        files = sorted(folder.glob(SHARD_GLOB))
        if not files:
            raise InputDataError(
                "no dynamics shards (run=*/epoch=*.parquet)", file=folder, fix="run `curate dynamics` first"
            )
        log = cls.from_frame(pl.concat([pl.read_parquet(f) for f in files], how="vertical"))
        passes = {
            sub: cls.read(folder / sub) if list((folder / sub).glob(SHARD_GLOB)) else None
            for sub in (EVAL_PASS, OUTPUTS)
        }
        return cls(log.frame, passes[EVAL_PASS], passes[OUTPUTS])

    @property
    def epochs(self) -> list[int]:
        """The recorded epochs, ascending."""
        return sorted(self.frame[EPOCH].unique().to_list())

    @property
    def n_epochs(self) -> int:
        """Number of recorded epochs (max epoch + 1)."""
        return int(self.frame[EPOCH].max() or 0) + 1  # type: ignore[arg-type]

    @property
    def runs(self) -> list[int]:
        """The run numbers in the log."""
        return sorted(self.frame[RUN].unique().to_list())

    @property
    def ids(self) -> pl.Series:
        """Every sample id in the log, sorted."""
        return self.frame[S.SAMPLE_ID].unique().sort()

    def early_epoch(self, fraction: float = EARLY_FRACTION) -> int:
        """The epoch at ``fraction`` of training (Paul et al. score EL2N at 10%: epoch 20 of 200)."""
        return early_epoch_index(self.n_epochs, fraction)

    def outputs_at(self, epoch: int) -> pl.DataFrame | None:
        """The eval-mode rows (with ``probs``) of the model at ``epoch``, all runs, from :attr:`outputs`;
        None when the recording keeps no outputs (one made before curate kept them).

        Raises:
            InputDataError: the recording keeps outputs, but not at ``epoch``.
        """
        if self.outputs is None:
            return None
        if epoch not in self.outputs.epochs:
            raise InputDataError(
                f"this recording keeps eval-mode outputs at epochs {self.outputs.epochs}, not at epoch {epoch}",
                file="dynamics log (outputs/)",
                fix=f"use one of the kept epochs (the default, {self.early_epoch()}, is one of them)",
            )
        return self.outputs.at_epoch(epoch)

    def at_epoch(self, epoch: int) -> pl.DataFrame:
        """Rows of one epoch (all runs).

        Raises:
            InputDataError: that epoch was not recorded.
        """
        rows = self.frame.filter(pl.col(EPOCH) == epoch)
        if rows.height == 0:
            raise InputDataError(
                f"epoch {epoch} not in the log (epochs 0..{self.n_epochs - 1})",
                file="dynamics log",
                fix="pick a recorded epoch",
            )
        return rows
