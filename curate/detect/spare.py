"""SPARE group inference (Yang et al., ICML 2023, "Identifying Spurious Biases Early in Training
through the Lens of Simplicity Bias").

Within each class, cluster the model's *outputs early in training* (softmax vectors) with k-means,
k chosen by silhouette up to ``max_clusters`` (5, as in the authors' scripts). Small clusters hold
the samples the early network does not fit with the majority: likely minority groups. The class's
sampling power is ``high_sampling_power`` (2) when its silhouette is below 0.9, else 1 (from the
authors' code); the ``spare`` selector samples each cluster ∝ 1/size^power. Conflict score:
``1 − share of the sample's cluster in its class``.

Whose outputs: every recording (a fine-tuned network's or a proxy head's) keeps its model's
eval-mode softmax at SPARE's candidate epochs (:meth:`DynamicsLog.outputs_at`,
:func:`~curate.dynamics.log.output_epochs`), and SPARE clusters those of ``epoch`` (default the
early epoch, 10% of training; `curate run` picks it on validation, as the lab's scripts pick their
inference epochs per dataset), as its authors cluster their network's. A proxy recording made before curate kept them has the proxy
retrained, with the recording's seeds and constant rate, to that epoch: the same model (a linear
head on frozen embeddings: no augmentation, dropout or batch norm).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from curate._core import schema as S
from curate.data.table import SampleTable
from curate.detect._base import DETECTORS, Discovery, Signals, build_discovery, train_rows
from curate.dynamics import DynamicsLog, ProxyConfig, proxy_outputs
from curate.dynamics.log import PROBS, RUN
from curate.index import KMeansConfig, choose_k

MAX_CLUSTERS = 5
SILHOUETTE_THRESHOLD = 0.9
HIGH_SAMPLING_POWER = 2


@DETECTORS.register(
    "spare", needs=("embeddings", "dynamics"), description="SPARE: k-means on the early outputs per class"
)
def spare(
    table: SampleTable,
    signals: Signals,
    *,
    epoch: int | None = None,
    max_clusters: int = MAX_CLUSTERS,
    silhouette_threshold: float = SILHOUETTE_THRESHOLD,
    high_sampling_power: float = HIGH_SAMPLING_POWER,
    seed: int = 0,
) -> Discovery:
    """SPARE's per-class clusters of early outputs and per-class sampling powers (in ``extra``)."""
    log = signals.need_dynamics("spare")
    e = log.early_epoch() if epoch is None else epoch
    rows = train_rows(table)
    z, source = early_outputs(table, signals, log, e, rows)
    labels = rows[S.LABEL].to_numpy()
    cluster = np.zeros(len(rows), dtype=np.int64)
    conflict = np.zeros(len(rows))
    powers: dict[int, float] = {}
    silhouettes: dict[int, float] = {}
    kcfg = KMeansConfig(k_min=2, k_max=max_clusters, spherical=False, seed=seed)
    for y in np.unique(labels):
        rows_y = np.flatnonzero(labels == y)
        res, sil = choose_k(z[rows_y], kcfg)
        best_sil = sil[len(res.centroids)]
        cluster[rows_y] = res.assign
        share = np.bincount(res.assign, minlength=len(res.centroids)) / len(rows_y)
        conflict[rows_y] = 1.0 - share[res.assign]
        powers[int(y)] = high_sampling_power if best_sil < silhouette_threshold else 1.0
        silhouettes[int(y)] = best_sil
    config = {
        "epoch": e,
        "outputs": source,
        "max_clusters": max_clusters,
        "silhouette_threshold": silhouette_threshold,
        "high_sampling_power": high_sampling_power,
        "seed": seed,
    }
    return build_discovery(
        rows,
        conflict,
        cluster,
        detector="spare",
        config=config,
        dynamics=log,
        extra={"sampling_powers": powers, "silhouettes": silhouettes},
    )


def early_outputs(
    table: SampleTable, signals: Signals, log: DynamicsLog, epoch: int, rows: pl.DataFrame
) -> tuple[np.ndarray, str]:
    """The ``(len(rows), C)`` softmax outputs at ``epoch`` in ``rows``' order, and where they came from:
    the recording's eval-mode outputs (run 0; kept at SPARE's candidate epochs), else (a proxy
    recording without ``outputs/``, made before curate kept them) run 0's proxy retrained."""
    kept = log.outputs_at(epoch)
    if kept is not None:
        kept = kept.filter(pl.col(RUN) == min(kept[RUN]))
        ids, probs = kept[S.SAMPLE_ID].to_list(), np.asarray(kept[PROBS].to_list(), dtype=np.float32)
        source = "eval-mode outputs of the recorded model"
    else:
        emb = signals.need_embeddings("spare")
        cfg = ProxyConfig(**signals.proxy_config) if signals.proxy_config else ProxyConfig()
        ids, probs = proxy_outputs(emb, table, cfg, epochs=epoch + 1, device=signals.device)
        source = "proxy head retrained to the epoch"
    order = pl.DataFrame({S.SAMPLE_ID: ids, "_i": np.arange(len(ids))})
    idx = rows.join(order, on=S.SAMPLE_ID, how="left", maintain_order="left")["_i"]
    if idx.null_count():
        from curate.errors import IdMismatchError

        missing = rows.filter(idx.is_null())[S.SAMPLE_ID].to_list()
        raise IdMismatchError.from_ids("dataset train split", f"SPARE's outputs at epoch {epoch}", missing)
    return probs[idx.to_numpy()], source
