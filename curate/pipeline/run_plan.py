"""What a ``curate run`` will do, checked before any work: the methods, their selections and
trainers, the groups each trains with, the run config (TOML), and every config built."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import Any

from curate._core.device import resolve_device
from curate.data import SampleTable
from curate.dynamics import ProxyConfig
from curate.embed import DEFAULT_ENCODERS, create_encoder
from curate.errors import ConfigError, InputDataError, UnknownNameError, did_you_mean
from curate.finetune import ContrastiveConfig, DispelConfig, FinetuneConfig, MaskTuneConfig
from curate.finetune.network import check_network
from curate.pipeline._run_config import build, check_run_config, own_fields
from curate.pipeline._run_folder import check_out
from curate.pipeline.select import CONFIGS
from curate.pipeline.tuning import (
    SELECTION_LABELS,
)
from curate.select import SELECTORS

logger = logging.getLogger(__name__)

NO_GROUPS = "none"
PSEUDO = "pseudo (inferred by the detector)"
TRUE_TRAIN = "true train groups"
TRUE_VAL = "true val groups (DFR's last-layer set)"
TRUE_VAL_DISPEL = "true val groups (DISPEL's group-labelled set)"
TRUE_TRAIN_DISPEL = "true train groups (DISPEL's group-labelled set)"
TRUE_ATTR = "true train groups (sampled uniformly over groups) + attributes (the spurious-class term)"
RUN_METHODS: dict[str, tuple[str, str, str]] = {
    # method: (selection, trainer, the groups it trains with by default; see train_groups_of)
    "erm": ("keep-all", "erm", NO_GROUPS),
    "prune": ("prune", "erm", PSEUDO),
    # heads: DISPEL's last layer draws its sets from the pseudo-groups itself (the manifest keeps every
    # row); a network backbone trains ERM on the mixing manifest (input-level pairs) instead
    "mix": ("mix", "dispel", PSEUDO),
    "mix-val": ("keep-all", "dispel", TRUE_VAL_DISPEL),
    "balance": ("balance", "erm", PSEUDO),
    "jtt": ("jtt", "erm", PSEUDO),
    "spare": ("spare", "erm", PSEUDO),
    "dfr": ("keep-all", "dfr", TRUE_VAL),
    "groupdro": ("keep-all", "groupdro", TRUE_TRAIN),
    "masktune": ("keep-all", "masktune", NO_GROUPS),
    # the authors' loader samples uniformly over the true (attribute, class) groups (their WILDS config:
    # Multimodal uniform_over_groups=True, groupby ['generic-spurious', 'y']): the oracle manifest
    "contrastive": ("oracle", "contrastive", TRUE_ATTR),
    "oracle": ("oracle", "erm", TRUE_TRAIN),
}
MEAN_SELECTED = ("erm",)
"""Methods whose epoch is chosen by mean validation accuracy whatever ``select_on`` says: plain ERM,
as the field defines its baseline (no group labels in training or selection)."""
LABEL_FREE_TRAINING = (NO_GROUPS, PSEUDO)
RUN_DETECTORS = {"jtt": "jtt", "spare": "spare"}  # methods defined on their own discovery; the rest: auto
PSEUDO_GROUP_SELECTIONS = ("balance", "prune", "mix")
RUN_STAGES = ("load", "embed", "dynamics", "detect", "select", "finetune", "report")
BACKBONES = ("auto", "network", "head")
METRICS_FILE = "metrics.json"
TIMING_FILE = "timing.json"  # wall times, apart from metrics.json so that reruns are byte-equal


def read_run_config(path: str | Path) -> dict[str, dict[str, Any]]:
    """A ``curate run --config`` TOML file: tables ``[embed]``, ``[dynamics]``, ``[detect]``,
    ``[select]``, ``[finetune]`` whose keys are the fields of that stage's config.

    Raises:
        InputDataError: the file cannot be read. ConfigError: it is not TOML (names the file and line).
        ConfigError: an unknown section or key (with the closest valid name), or a bad value, named by
            section and key: ``[select] fraction: expected a float in (0, 1), got "half"``.
    """
    import tomllib

    file = Path(path)
    try:
        text = file.read_text()
    except OSError as e:
        raise InputDataError(f"cannot read the run config ({e.strerror or e})", file=file, fix="check the path") from e
    try:
        cfg = tomllib.loads(text)
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:  # a configuration error: exit 2
        raise ConfigError(f"{file}: not valid TOML ({e}); fix the file (see README, `curate run`)") from e
    return check_run_config(cfg, str(file))


def check_sections(cfg: Mapping[str, Any], where: str) -> dict[str, dict[str, Any]]:
    """Every section of a run config, empty where absent, each key and value checked
    (see :func:`curate.pipeline._run_config.check_run_config`)."""
    return check_run_config(cfg, where)


def _make(cls: Any, section: str, fields: dict[str, Any], **defaults: Any) -> Any:
    return build(cls, section, fields, "run config", **defaults)


def check_method(method: str) -> str:
    """``method`` if it is one of :data:`RUN_METHODS`.

    Raises:
        UnknownNameError: not a run method (with the closest one and the list).
    """
    if method not in RUN_METHODS:
        raise UnknownNameError(
            f"unknown method {method!r}{did_you_mean(method, RUN_METHODS)} (valid: {', '.join(RUN_METHODS)})"
        )
    return method


def resolve_backbone(backbone: str, device: str) -> str:
    """``auto`` → ``network`` on CUDA, ``head`` on the CPU (a fine-tuned network is hours per run there).

    Raises:
        ConfigError: not one of ``auto``, ``network``, ``head``.
    """
    if backbone not in BACKBONES:
        raise ConfigError.bad_param("run()", "backbone", f"one of {', '.join(BACKBONES)}", backbone)
    if backbone == "auto":
        return "network" if device.startswith("cuda") else "head"
    return backbone


def train_groups_of(method: str, sel_cfg: Any, train_cfg: Any) -> str:
    """In words, the groups ``method``'s run trains with, from its built configs: a ``[select]
    attribute`` (prune's carriers from a named column), GroupDRO's ``[finetune] groups`` and DISPEL's
    ``source`` change them from the method's default (:data:`RUN_METHODS`)."""
    attribute = getattr(sel_cfg, "attribute", None)
    if attribute is not None:
        return f"attribute column {attribute!r} (named, not inferred)"
    if isinstance(train_cfg, FinetuneConfig) and train_cfg.method == "groupdro":
        return TRUE_TRAIN if train_cfg.groups == "true" else PSEUDO
    if isinstance(train_cfg, FinetuneConfig) and train_cfg.method == "dispel-val":
        return TRUE_VAL_DISPEL
    if isinstance(train_cfg, DispelConfig):
        return {"val": TRUE_VAL_DISPEL, "train": TRUE_TRAIN_DISPEL}.get(train_cfg.source, PSEUDO)
    return RUN_METHODS[method][2]


def trainer_config(trainer: str, fields: dict[str, Any], *, seed: int, encoder: str, backbone: str) -> Any:
    """The config of ``trainer`` from the ``[finetune]`` fields; ``network`` fine-tunes ``encoder``.

    MaskTune always fine-tunes the network (it masks the network's saliency); the contrastive
    method trains projections over the frozen towers. A ``[finetune]`` field of another trainer's
    config (``epochs`` for DISPEL, say, in a run of several methods) is left to that trainer; a name
    no trainer knows is an error.
    """
    configs = {"masktune": MaskTuneConfig, "contrastive": ContrastiveConfig, "dispel": DispelConfig}
    fields = own_fields(configs.get(trainer, FinetuneConfig), "finetune", fields)
    if trainer == "masktune":
        return _make(MaskTuneConfig, "finetune", fields, seed=seed, backbone=encoder)
    if trainer == "contrastive":
        return _make(ContrastiveConfig, "finetune", fields, seed=seed)
    if trainer == "dispel":
        return _make(DispelConfig, "finetune", fields, seed=seed)
    # GroupDRO runs only on datasets with true groups (checked by run): FinetuneConfig's default groups="true"
    net = {"backbone": encoder} if backbone == "network" else {}
    return _make(FinetuneConfig, "finetune", fields, method=trainer, seed=seed, **net)


@dataclass(frozen=True)
class RunPlan:
    """What one method's run will do, every config built (and so checked)."""

    method: str
    seed: int
    selection: str
    trainer: str
    train_groups: str
    kind: str
    encoder: str
    proxy: ProxyConfig
    sel_name: str
    sel_cfg: Any
    train_cfg: Any
    head_cfg: FinetuneConfig


def head_proxy_fields(head: FinetuneConfig, modality: str, dev: str) -> dict[str, Any]:
    """The fields a head run's proxy takes from the run's head settings (``[finetune]``): the model
    whose dynamics score the samples trains as the one retrained on the curated set (the data-pruning
    authors' EL2N run and their retraining share every hyperparameter)."""
    settings = head.settings(modality=modality, device=dev)
    shared = {f.name for f in dataclass_fields(ProxyConfig)} - {"seed", "runs"}
    return {k: settings[k] for k in sorted(shared) if k in settings}


def plan_method(
    method: str,
    sections: dict[str, dict[str, Any]],
    *,
    dev: str,
    backbone: str,
    seed: int,
    encoder: str | None,
    table: SampleTable | None,
) -> RunPlan:
    """Build every config of ``method``'s run; with ``table``, also check the dataset fits it."""
    check_method(method)
    selection, trainer, _ = RUN_METHODS[method]
    kind = resolve_backbone(backbone, dev)
    fields = sections["finetune"] | ({"source": "val"} if method == "mix-val" else {})
    if trainer == "dispel" and kind == "network":  # DISPEL's last layer on the fine-tuned network's features,
        # or, from train pseudo-groups, the mixing manifest's pairs mixed at the input level
        if fields.get("source") == "train":
            raise ConfigError(
                "run(): [finetune] source 'train' is DISPEL's last layer on a head's frozen embeddings; a network "
                "run mixes the manifest's pseudo-group pairs at the input level (source 'pseudo') or fits DISPEL "
                "on the fine-tuned network's val features (source 'val', as -m mix-val)"
            )
        trainer = "dispel-val" if fields.get("source") == "val" else "erm"
        fields = {k: v for k, v in fields.items() if k != "source"}
    elif trainer == "dispel":
        selection = "keep-all"  # DISPEL draws its own sets: the manifest is every train row
    modality = "image" if table is None else table.modality  # before loading: any network will do
    enc = encoder or DEFAULT_ENCODERS[modality]
    sel_name = SELECTORS.entry(selection).name
    sel_cls = CONFIGS[sel_name]
    sel_cfg = _make(sel_cls, "select", own_fields(sel_cls, "select", sections["select"]), seed=seed)
    train_cfg = trainer_config(trainer, fields, seed=seed, encoder=enc, backbone=kind)
    train_groups = train_groups_of(method, sel_cfg, train_cfg)
    if table is not None and train_groups not in LABEL_FREE_TRAINING and not table.has_groups:
        raise InputDataError(
            f"method {method!r} needs true group labels, and this dataset has none",
            file=table.where,
            fix="pick a label-free method: "
            + ", ".join(m for m, v in RUN_METHODS.items() if v[2] in LABEL_FREE_TRAINING),
        )
    if table is not None and isinstance(train_cfg, FinetuneConfig) and train_cfg.is_network:
        check_network(train_cfg, table, dev)
    # [finetune]'s ERM head, whatever the trainer: it scores candidate discoveries, and on a head run
    # the proxy trains as it (one recording, one discovery for every method of the run; a field set in
    # [dynamics] wins). A network run records the network itself: its proxy head keeps the defaults.
    head_cfg = replace(trainer_config("erm", fields, seed=seed, encoder=enc, backbone="head"), backbone="head")
    carried = head_proxy_fields(head_cfg, modality, dev) if kind == "head" else {}
    _make(ProxyConfig, "finetune", carried, seed=seed)  # a bad head setting is named by its own section
    proxy = _make(ProxyConfig, "dynamics", carried | sections["dynamics"], seed=seed)
    return RunPlan(
        method, seed, selection, trainer, train_groups, kind, enc, proxy, sel_name, sel_cfg, train_cfg, head_cfg
    )  # fmt: skip


def check_run(
    methods: Sequence[str],
    *,
    config: Mapping[str, Any] | None = None,
    encoder: str | None = None,
    device: str = "auto",
    backbone: str = "auto",
    select_on: str = "val-groups",
    seed: int = 0,
    table: SampleTable | None = None,
    outs: Sequence[str | Path] = (),
) -> str:
    """Check every input of :func:`run` for ``methods`` before any work: each method name, the
    config's sections, keys and values, ``select_on``, ``backbone``, ``device``, the encoder's
    name and each run folder in ``outs``; with ``table``, also that the dataset fits each method
    (group labels, the encoder's modality, a network's needs). Cheap: nothing is loaded, embedded
    or written.

    Returns:
        The resolved device.

    Raises:
        UnknownNameError: an unknown method or encoder (with the closest name). ConfigError: a bad
            setting or option. DeviceUnavailableError: the device is absent. InputDataError: the
            dataset does not fit a method. OutputExistsError: a folder of ``outs`` holds files that
            are not a run.
    """
    twice = sorted({m for m in methods if list(methods).count(m) > 1})
    if twice:
        raise ConfigError(f"run: method {twice[0]!r} given more than once; give each method once")
    for m in methods:
        check_method(m)
    sections = check_run_config(config or {}, "run config")
    if select_on not in SELECTION_LABELS:
        raise ConfigError.bad_param("run()", "select_on", f"one of {', '.join(SELECTION_LABELS)}", select_on)
    if backbone not in BACKBONES:
        raise ConfigError.bad_param("run()", "backbone", f"one of {', '.join(BACKBONES)}", backbone)
    if encoder is not None:
        enc = create_encoder(encoder)
        if table is not None:
            enc.check_modality(table.modality)
    for folder in outs:
        check_out(Path(folder))
    dev = resolve_device(device)
    for m in methods:
        plan_method(m, sections, dev=dev, backbone=backbone, seed=seed, encoder=encoder, table=table)
    return dev
