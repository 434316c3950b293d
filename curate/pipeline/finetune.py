"""Stage 6, fine-tune: train any registered method on a manifest (one protocol for all of them),
evaluate on val and test, and write the run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from curate._core import schema as S
from curate._core.device import resolve_device
from curate._core.io import atomic_path, write_json_atomic
from curate.data import SampleTable
from curate.detect import Discovery
from curate.embed import EmbeddingTable
from curate.finetune import (
    FINETUNE_METHODS,
    ContrastiveConfig,
    DispelConfig,
    FinetuneConfig,
    FinetuneResult,
    MaskTuneConfig,
    TrainRequest,
    train,
)
from curate.manifest import Manifest

HEAD_BACKBONE = "head on frozen embeddings"
NETWORK_BACKBONE = "fine-tuned network"


def method_of(config: Any) -> str:
    """The finetune method a config belongs to (``FinetuneConfig`` says it in ``method``)."""
    if isinstance(config, MaskTuneConfig):
        return "masktune"
    if isinstance(config, ContrastiveConfig):
        return "contrastive"
    if isinstance(config, DispelConfig):
        return "dispel"
    return str(config.method)


def backbone_of(config: Any) -> str:
    """In words: ``fine-tuned network (SPEC)`` or ``head on frozen embeddings``."""
    if isinstance(config, FinetuneConfig) and config.is_network:
        return f"{NETWORK_BACKBONE} ({config.backbone})"
    return HEAD_BACKBONE


def finetune(
    table: SampleTable,
    embeddings: EmbeddingTable | None,
    manifest: Manifest,
    config: Any = None,
    *,
    method: str | None = None,
    discovery: Discovery | None = None,
    out: str | Path | None = None,
    device: str = "auto",
) -> FinetuneResult:
    """Train ``method`` (default: the config's) on the manifest's rows, select the epoch by
    validation worst-group accuracy and evaluate on test.

    ``config`` is the method's config class (:class:`FinetuneConfig` for erm/groupdro/dfr, on a head
    or a network backbone; :class:`MaskTuneConfig`; :class:`ContrastiveConfig`). With ``out``:
    checkpoints (a rerun resumes), per-sample dynamics, ``metrics.json`` (val and test: acc_avg,
    acc_wg, adj_acc_avg, groups, ...) and ``predictions.parquet``, written atomically.

    Raises:
        UnknownNameError: unknown method. DeviceUnavailableError: CUDA asked for but absent.
    """
    cfg = config if config is not None else FinetuneConfig()
    name = method or method_of(cfg)
    pseudo = None if discovery is None else discovery.scores.select(S.SAMPLE_ID, S.PSEUDO_GROUP)
    request = TrainRequest(
        table, manifest, embeddings, pseudo, resolve_device(device), None if out is None else Path(out)
    )
    result = train(name, request, cfg)
    if out is not None:
        write_run(out, name, result, manifest, backbone_of(cfg))
    return result


def write_run(out: str | Path, method: str, result: FinetuneResult, manifest: Manifest, backbone: str) -> None:
    """``metrics.json`` and ``predictions.parquet`` of a fine-tune run, atomically."""
    folder = Path(out)
    write_json_atomic(
        folder / "metrics.json",
        {
            "method": method,
            "backbone": backbone,
            "group_labels_in_training": FINETUNE_METHODS.meta(method).get("group_labels"),
            "manifest": manifest.provenance,
            "config": result.config,
            "best_epoch": result.best_epoch,
            "val": result.val.to_dict(),
            "test": result.test.to_dict(),
            **result.extra,
        },
    )
    with atomic_path(folder / "predictions.parquet") as tmp:
        result.predictions.write_parquet(tmp)


def contrastive(
    table: SampleTable,
    embeddings: EmbeddingTable,
    manifest: Manifest,
    config: ContrastiveConfig | None = None,
    *,
    discovery: Discovery | None = None,
    out: str | Path | None = None,
    device: str = "auto",
) -> FinetuneResult:
    """The multi-modal contrastive method (Yang et al., ICML 2023) on the manifest's rows (see
    :class:`ContrastiveConfig`); with ``out``: as :func:`finetune`."""
    return finetune(
        table, embeddings, manifest, config or ContrastiveConfig(), discovery=discovery, out=out, device=device
    )


def masktune(
    manifest: Manifest,
    table: SampleTable,
    config: MaskTuneConfig | None = None,
    *,
    out: str | Path | None = None,
    device: str = "auto",
) -> FinetuneResult:
    """MaskTune (NeurIPS 2022) on the manifest's images with a fine-tuned network (see
    :class:`MaskTuneConfig`); with ``out``: as :func:`finetune`."""
    return finetune(table, None, manifest, config or MaskTuneConfig(), out=out, device=device)
