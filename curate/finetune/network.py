"""Fine-tune a pretrained network on a manifest (``backbone`` = a :data:`curate.embed.BACKBONES` spec).

The network is the encoder's (EfficientNet-Lite0, a torchvision model, a transformers text
encoder, a CLIP tower) with a new linear head sized from the dataset; layers before
``train_from`` stay frozen. Training goes through the one loop of :mod:`curate.train`:

* rows are drawn by the manifest's weights (a weighted sampler with replacement; a permutation
  when every weight is equal), decoded and augmented in DataLoader workers, each item's random
  augmentation seeded by ``(seed, epoch, row)``;
* mixing pairs (``mix_with``, ``mix_lambda``) are applied to the pixels of images and to the
  token-embedding output of texts, inside the model;
* images use the backbone's pretrained preprocessing rescaled to ``image_size``; on CUDA the loop
  runs in bf16/fp16 autocast; images train in channels-last layout (2× faster convolutions on the
  CPU too, measured);
* model selection on validation worst-group accuracy; checkpoints hold the model, optimiser,
  schedule, sampler and GroupDRO state, so a killed run resumes to the same result;
* dynamics: the recorder logs the in-training logits of every row (``RUN/dynamics``) and an
  eval-mode pass over the rows at ``eval_fraction`` of training (``RUN/dynamics/eval``; EL2N as
  the data-pruning authors take it); a dynamics recording (``dynamics_dir`` set: the one the
  detectors read) also keeps the eval-mode softmax outputs at SPARE's candidate epochs
  (``outputs/``, :func:`~curate.dynamics.log.output_epochs`: SPARE clusters them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from curate._core import schema as S
from curate._core.cache import fingerprint
from curate._core.seed import derive_seed
from curate.data.table import SampleTable
from curate.dynamics import DynamicsRecorder, EvalPass, eval_epochs
from curate.dynamics.log import EVAL_PASS, OUTPUTS, output_epochs
from curate.embed import Backbone, create_backbone
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
from curate.manifest import Manifest, ManifestDataset
from curate.train import LoaderBatches, predict_batches


class ImageLoader:
    """``source`` (a path relative to the dataset root) → a transformed image tensor; picklable for workers."""

    def __init__(self, root: Path | None, transform: Callable[[Any], Any], where: str) -> None:
        self.root = root
        self.transform = transform
        self.where = where

    def __call__(self, source: str) -> Any:
        from PIL import Image

        path = Path(source) if self.root is None else self.root / source
        try:
            with Image.open(path) as im:
                img = im.convert("RGB")
        except (OSError, ValueError) as e:
            raise InputDataError(
                f"cannot read image {path} ({e})", file=self.where, column=S.PATH, fix="fix or drop the file"
            ) from e
        return self.transform(img)


class Collate:
    """Batches of dataset items: images stacked; texts tokenised (a row and its mixing partner padded
    to one length); the rows' weights are dropped, since the sampler already draws rows by weight."""

    def __init__(self, tokenizer: Any = None, max_length: int | None = None) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length

    def _tokens(self, texts: list[str]) -> dict[str, Any]:
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        return {k: v for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        import torch
        from torch.utils.data import default_collate

        text = self.tokenizer is not None
        rest = [{k: v for k, v in it.items() if k not in ("x", "mix_x", "weight", "sample_id")} for it in items]
        batch: dict[str, Any] = default_collate(rest)
        if not text:
            batch["x"] = torch.stack([it["x"] for it in items])
            if "mix_x" in items[0]:
                batch["mix_x"] = torch.stack([it["mix_x"] for it in items])
            return batch
        texts = [it["x"] for it in items]
        if "mix_x" not in items[0]:
            batch["x"] = self._tokens(texts)
            return batch
        enc = self._tokens(texts + [it["mix_x"] for it in items])
        n = len(items)
        batch["x"] = {k: v[:n] for k, v in enc.items()}
        batch["mix_x"] = {k: v[n:] for k, v in enc.items()}
        return batch


class _Rows:
    """Map-style dataset of ``{"x", "index"}`` over a list of sources (evaluation passes)."""

    def __init__(self, sources: list[str], load: Callable[[str], Any]) -> None:
        self.sources = sources
        self.load = load

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"x": self.load(self.sources[i]), "index": i}


@dataclass
class NetworkInputs:
    """How a backbone reads the dataset: loaders for training and evaluation, and the collate."""

    train_load: Callable[[str], Any]
    eval_load: Callable[[str], Any]
    collate: Collate
    sources: dict[str, str]

    @classmethod
    def create(cls, backbone: Backbone, table: SampleTable, settings: dict[str, Any]) -> NetworkInputs:
        """Image loaders (the rescaled pretrained preprocessing; augmentation for training when
        ``settings["augment"]``) or text identity loaders with the backbone's tokenizer."""
        frame = table.frame
        sources = dict(zip(frame[S.SAMPLE_ID].to_list(), frame[S.source_column(frame)].to_list(), strict=True))
        if table.modality == "text":
            max_length = min(backbone.max_length, settings["max_length"] or backbone.max_length)
            return cls(str, str, Collate(backbone.tokenizer(), max_length), sources)
        pre = backbone.preprocess(settings["image_size"])
        train_tf = pre.train_transform() if settings["augment"] else pre.transform()
        return cls(
            ImageLoader(table.root, train_tf, table.where), ImageLoader(table.root, pre.transform(), table.where),
            Collate(), sources,
        )  # fmt: skip

    def loader(self, ids: list[str], settings: dict[str, Any]) -> Any:
        """A DataLoader over ``ids`` in order, evaluation preprocessing, ``index`` = position in ``ids``."""
        from torch.utils.data import DataLoader

        from curate.train.data import _one_thread

        workers = settings["num_workers"]
        return DataLoader(
            _Rows([self.sources[i] for i in ids], self.eval_load),  # type: ignore[arg-type]
            batch_size=max(2 * settings["batch_size"], 64),
            num_workers=workers,
            collate_fn=self.collate,
            pin_memory=settings["device"].startswith("cuda"),
            worker_init_fn=_one_thread if workers > 0 else None,
        )


def build_network(backbone: Backbone, n_classes: int, modality: str, settings: dict[str, Any], seed: int) -> Any:
    """The backbone's network with a seeded new head, frozen before ``settings["train_from"]``."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, "finetune-init"))
        model = backbone.build(n_classes, modality=modality, image_size=settings["image_size"])
    model.freeze_before(None if settings["train_from"] == "all" else settings["train_from"])
    return model


def predictor(model: Any, inputs: NetworkInputs, settings: dict[str, Any]) -> Callable[[list[str]], Any]:
    """``predict(ids) -> (logits, features)`` in eval mode on the run's device and precision."""

    def predict(ids: list[str]) -> Any:
        return predict_batches(
            model, inputs.loader(ids, settings), len(ids), device=settings["device"],
            precision=settings["precision"], channels_last=settings["channels_last"],
        )  # fmt: skip

    return predict


def network_settings(
    cfg: Any, backbone: Backbone, table: SampleTable, device: str, n_rows: int | None = None
) -> dict[str, Any]:
    """``cfg.settings`` for this backbone, device and number of training rows (default: the train
    split's), plus the backbone's identity and layout."""
    rows = n_rows if n_rows is not None else table.split("train").frame.height
    s = cfg.settings(modality=table.modality, device=device, pretrained=backbone.pretrained, n_rows=rows)
    s["backbone_id"] = backbone.describe()
    s["channels_last"] = table.modality == "image"
    if table.modality == "image":
        s["image_size"] = backbone.preprocess(s["image_size"]).crop
    return s


def check_network(cfg: FinetuneConfig, table: SampleTable, device: str) -> dict[str, Any]:
    """Every network setting checked before any expensive work: the backbone exists and takes this
    modality, the image size suits it, and ``train_from`` names one of its stages.

    Returns:
        The resolved settings.

    Raises:
        UnknownNameError, ConfigError, MissingDependencyError: the first bad setting.
    """
    backbone = create_backbone(cfg.backbone)
    backbone.check_modality(table.modality)
    settings = network_settings(cfg, backbone, table, device)
    if settings["train_from"] != "all":
        build_network(backbone, max(2, table.n_classes), table.modality, settings, cfg.seed)
    return settings


def run_key(manifest: Manifest, table: SampleTable, settings: dict[str, Any], *parts: Any) -> str:
    """A run folder's identity: the rows, the data and every setting that changes the result."""
    keep = {k: v for k, v in settings.items() if k not in ("device", "num_workers")}
    return fingerprint("network", manifest.frame, table.fingerprint(), keep, *parts)


def train_network(request: TrainRequest, cfg: FinetuneConfig, *, keep: dict[str, Any] | None = None) -> FinetuneResult:
    """Fine-tune ``cfg.backbone`` on the manifest's rows (ERM, GroupDRO, or ERM then DFR's last layer).

    ``keep``, when given, receives the selected ``model``, its ``inputs``, ``backbone`` and
    ``predict(ids)`` (for methods built on the ERM network, such as MaskTune).

    Raises:
        ConfigError: a backbone for another modality, or an unknown ``train_from`` stage.
        InputDataError: an unreadable image, GroupDRO without groups, DFR without true val groups.
    """
    table, manifest, dev = request.table, request.manifest, request.device
    backbone = create_backbone(cfg.backbone)
    backbone.check_modality(table.modality)
    settings = network_settings(cfg, backbone, table, dev, len(manifest))
    f = manifest.frame
    y = f[S.LABEL].to_numpy().astype(np.int64)
    n_classes = max(table.n_classes, int(y.max()) + 1)
    model = build_network(backbone, n_classes, table.modality, settings, cfg.seed)
    inputs = NetworkInputs.create(backbone, table, settings)
    out = None if request.out is None else Path(request.out)
    if out is not None:
        claim_run(out, run_key(manifest, table, settings, cfg.to_dict()))
    method, groups = make_method(model, cfg, manifest)
    seed = cfg.seed if settings["augment"] else None  # only random augmentations need a seeded stream
    uniq, uniq_labels, row_index = unique_rows(f)
    dataset = _TrainRows(
        ManifestDataset(manifest, inputs.train_load, sources=inputs.sources, seed=seed, mix="pair"), groups, row_index
    )
    tcfg = cfg.train_config(settings)
    batches = LoaderBatches(
        dataset, batch_size=tcfg.batch_size, seed=cfg.seed, weights=f[S.WEIGHT].to_numpy(),
        num_workers=settings["num_workers"], collate=inputs.collate, pin_memory=dev.startswith("cuda"),
    )  # fmt: skip
    settings["sampling"] = batches.sampling
    predict = predictor(model, inputs, settings)
    val_ids, test_ids = eval_ids(table)

    def score() -> Any:
        return request.score_val(prediction_frame(val_ids, predict(val_ids)[0].argmax(1)))

    hooks: list[Any] = []
    dyn = request.dynamics_folder()
    if dyn is not None:
        recording = request.dynamics_dir is not None  # the dynamics the detectors read: SPARE's outputs too
        passes = eval_pass(
            model,
            predict,
            f,
            n_classes,
            tcfg.epochs,
            cfg.eval_fraction,
            dyn,
            dev,
            request.dynamics_run,
            outputs=recording,
        )
        hooks.append(passes)
    best_epoch = fit_selected(
        method, batches, tcfg, score, out=out, record=(uniq, uniq_labels, n_classes),
        desc=f"{cfg.method} ({backbone.spec})", device=dev, hooks=(*hooks, *request.hooks),
        dynamics=(request.dynamics_dir, request.dynamics_run),
        channels_last=settings["channels_last"], select_on=request.select_on,
    )  # fmt: skip
    outputs = {"val": predict(val_ids), "test": predict(test_ids)}
    if keep is not None:
        keep.update(model=model, inputs=inputs, backbone=backbone, predict=predict)
    return classifier_result(request, cfg, settings, outputs, best_epoch)


def eval_pass(
    model: Any,
    predict: Callable[[list[str]], Any],
    rows: Any,
    n_classes: int,
    epochs: int,
    fraction: float,
    folder: Path,
    device: str,
    run: int = 0,
    *,
    outputs: bool = False,
) -> EvalPass:
    """The eval-mode dynamics passes over the manifest's unique rows, in the recorder's shard layout:
    at ``fraction`` of training in ``folder/eval`` (prune's EL2N) and, with ``outputs``, the softmax
    vectors at SPARE's candidate epochs in ``folder/outputs`` (SPARE clusters them)."""
    unique = rows.unique(S.SAMPLE_ID, keep="first", maintain_order=True)
    ids, labels = unique[S.SAMPLE_ID].to_list(), unique[S.LABEL].to_numpy()
    targets = [
        (
            DynamicsRecorder(folder / EVAL_PASS, ids, labels, n_classes, run=run, device=device),
            eval_epochs(epochs, (fraction,)),
        )
    ]
    if outputs:
        early = DynamicsRecorder(folder / OUTPUTS, ids, labels, n_classes, run=run, device=device, keep_probs=True)
        targets.append((early, output_epochs(epochs)))
    return EvalPass(lambda: predict(ids), targets, epochs, restore=model.train)


class _TrainRows:
    """A manifest dataset whose items carry GroupDRO's ``group`` of each row and, as ``index``, the
    position of the row's sample among the manifest's unique ids (upsampled rows share one)."""

    def __init__(self, dataset: ManifestDataset, groups: np.ndarray | None, unique_index: np.ndarray) -> None:
        self.dataset = dataset
        self.groups = groups
        self.unique_index = unique_index

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.get(i, i)

    def get(self, i: int, draw: int) -> dict[str, Any]:
        """Row ``i`` as the epoch's ``draw``-th item, with its group; ``index`` is the row's sample
        (its position among the manifest's unique ids), which the recorder keys on."""
        item = self.dataset.get(i, draw)
        item["index"] = int(self.unique_index[i])
        if self.groups is not None:
            item["group"] = int(self.groups[i])
        return item
