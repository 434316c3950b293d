"""The settings of ``curate run`` (a ``--config`` TOML or a dict): sections, keys, value types and
ranges, all checked before the first expensive step.

A section's keys are the fields of its stage's configs (``[dynamics]``: :class:`ProxyConfig`;
``[select]``: every selector's config; ``[finetune]``: every trainer's config) or the keyword
parameters of its stage's function (``[embed]``: :func:`curate.pipeline.embed.embed`; ``[detect]``:
``detector`` and every detector's parameters). An unknown section or key names the closest valid
one; a bad value names its section and key::

    [select] fraction: expected a float in (0, 1), got "half"
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

from curate.errors import ConfigError, did_you_mean

RUN_SECTIONS = ("embed", "dynamics", "detect", "select", "finetune")
EMBED_ARGS = ("table", "encoder", "device", "workspace")  # given by the run itself, not settings
DETECTOR_KEY = "detector"
_PROBES: dict[type, Any] = {float: math.nan, int: -(2**31), str: "\x00"}  # out of range for every check


def _hints(obj: Any) -> dict[str, Any]:
    """Resolved type hints of a class or function ({} where they cannot be resolved)."""
    try:
        return typing.get_type_hints(obj)
    except (NameError, TypeError, AttributeError):
        return {}


def section_configs() -> dict[str, tuple[type, ...]]:
    """The config dataclasses whose fields make up each section (none for embed and detect)."""
    from curate.dynamics import ProxyConfig
    from curate.finetune import ContrastiveConfig, DispelConfig, FinetuneConfig, MaskTuneConfig
    from curate.pipeline.select import CONFIGS

    select = tuple(dict.fromkeys(CONFIGS.values()))
    return {
        "embed": (),
        "dynamics": (ProxyConfig,),
        "detect": (),
        "select": select,
        "finetune": (FinetuneConfig, MaskTuneConfig, ContrastiveConfig, DispelConfig),
    }


def section_keys() -> dict[str, dict[str, list[Any]]]:
    """Every section's keys, each with the type hints a value may match (empty: not checked)."""
    from curate.detect import DETECTORS
    from curate.pipeline.embed import embed

    keys: dict[str, dict[str, list[Any]]] = {s: {} for s in RUN_SECTIONS}
    for section, classes in section_configs().items():
        for cls in classes:
            hints = _hints(cls)
            for f in dataclasses.fields(cls):
                keys[section].setdefault(f.name, []).append(hints.get(f.name, Any))
    hints = _hints(embed)
    for name in inspect.signature(embed).parameters:
        if name not in EMBED_ARGS:
            keys["embed"][name] = [hints.get(name, Any)]
    keys["detect"][DETECTOR_KEY] = [str]
    for name in DETECTORS.names():
        fn = DETECTORS.entry(name).obj
        if fn is None:
            continue
        hints = _hints(fn)
        for p in inspect.signature(fn).parameters.values():
            if p.kind is inspect.Parameter.KEYWORD_ONLY:
                keys["detect"].setdefault(p.name, []).append(hints.get(p.name, Any))
    return keys


def accepts(value: Any, hint: Any) -> bool:
    """Whether a TOML value fits a type hint (ints count as floats, bools as neither)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(accepts(value, a) for a in typing.get_args(hint))
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if hint in (tuple, list) or origin in (tuple, list):
        return isinstance(value, (list, tuple))
    if hint is dict or origin is dict:
        return isinstance(value, Mapping)
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    return True


def describe(hint: Any) -> str:
    """A type hint in words: ``an integer``, ``a float``, ``a string``, ``true or false``, ``a list``."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(describe(a) for a in args)
    words = {int: "an integer", float: "a float", str: "a string", bool: "true or false", dict: "a table"}
    if hint in words:
        return words[hint]
    if hint in (tuple, list) or typing.get_origin(hint) in (tuple, list):
        return "a list"
    return "a value of another type"


def show(value: Any) -> str:
    """A value as TOML writes it (strings in double quotes, ``true``/``false``)."""
    return json.dumps(value, default=str)


def _probe_expected(classes: tuple[type, ...], key: str, hint: Any) -> str | None:
    """The range a config's own check states for ``key`` (``a float in (0, 1)``), found by building
    the config with a value of the right type that every range excludes; None if none states one."""
    base = next((a for a in (hint, *typing.get_args(hint)) if a in _PROBES), None)
    for cls in classes:
        if base is None or key not in {f.name for f in dataclasses.fields(cls)}:
            continue
        try:
            cls(**{key: _PROBES[base]})
        except ConfigError as e:
            if e.param == key and e.expected:
                return e.expected
        except (TypeError, ValueError):
            continue
    return None


def bad_value(where: str, section: str, key: str, expected: str, got: Any) -> ConfigError:
    """The one message shape of a bad setting: ``[select] fraction: expected ..., got "half"``."""
    return ConfigError(f"{where}: [{section}] {key}: expected {expected}, got {show(got)}")


def build(cls: Callable[..., Any], section: str, fields: Mapping[str, Any], where: str, **defaults: Any) -> Any:
    """``cls(**defaults, **fields)``, a bad value reported by its section and key.

    Raises:
        ConfigError: the config rejects a value (``[section] key: expected ..., got ...``).
    """
    try:
        return cls(**(defaults | dict(fields)))
    except ConfigError as e:
        if e.param is not None and e.param in fields and e.expected:
            raise bad_value(where, section, e.param, e.expected, fields[e.param]) from e
        raise ConfigError(f"{where}: [{section}] {e}") from e
    except TypeError as e:  # a value of a type no check expected
        name = getattr(cls, "__name__", str(cls))
        raise ConfigError(f"{where}: [{section}]: {e} (the keys are the fields of {name})") from e


def own_fields(cls: type, section: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """The ``fields`` of a section that ``cls`` takes: another config's field in the same section
    (``fraction`` for a keep-all selection in a run of several methods) is left to that config."""
    own = {f.name for f in dataclasses.fields(cls)}
    others = {f.name for c in section_configs()[section] for f in dataclasses.fields(c)}
    return {k: v for k, v in fields.items() if k in own or k not in others}


def check_run_config(cfg: Mapping[str, Any], where: str = "run config") -> dict[str, dict[str, Any]]:
    """Check a run config's sections, keys, value types and ranges; return every section (empty
    where absent).

    Args:
        cfg: ``{section: {key: value}}`` as read from the TOML file.
        where: what the messages name (the file).

    Raises:
        ConfigError: an unknown section or key (with the closest valid name), or a bad value (naming
            the section and key, the expected type or range and the value given).
    """
    from curate.detect import DETECTORS

    if not isinstance(cfg, Mapping):
        raise ConfigError(f"{where}: expected tables {', '.join(f'[{s}]' for s in RUN_SECTIONS)}, got {show(cfg)}")
    schema = section_keys()
    for section, table in cfg.items():
        if section not in RUN_SECTIONS:
            raise ConfigError(
                f"{where}: unknown section [{section}]{did_you_mean(str(section), RUN_SECTIONS)} "
                f"(the sections are {', '.join(f'[{s}]' for s in RUN_SECTIONS)})"
            )
        if not isinstance(table, Mapping):
            raise ConfigError(f"{where}: [{section}] must be a table of settings, got {show(table)}")
        keys = schema[section]
        for key, value in table.items():
            if key not in keys:
                raise ConfigError(
                    f"{where}: [{section}] unknown key {key!r}{did_you_mean(str(key), keys)} "
                    f"(the keys are {', '.join(sorted(keys))})"
                )
            hints = keys[key]
            if not any(accepts(value, h) for h in hints):
                classes = section_configs()[section]
                expected = _probe_expected(classes, key, hints[0]) or " or ".join(
                    dict.fromkeys(describe(h) for h in hints)
                )
                raise bad_value(where, section, key, expected, value)
        if section == "detect" and DETECTOR_KEY in table and table[DETECTOR_KEY] != "auto":
            name = table[DETECTOR_KEY]
            if name not in DETECTORS:
                raise ConfigError(
                    f"{where}: [detect] detector: unknown detector {show(name)}{did_you_mean(name, DETECTORS.names())} "
                    f"(valid: auto, {', '.join(DETECTORS.names())})"
                )
        seen: set[str] = set()
        for cls in section_configs()[section]:  # every range, checked by the configs themselves
            names = {f.name for f in dataclasses.fields(cls)}
            build(cls, section, {k: v for k, v in table.items() if k in names - seen}, where)
            seen |= names  # a field is checked by the first config that has it
    return {s: dict(cfg.get(s, {})) for s in RUN_SECTIONS}
