"""The search config: one TOML file, every key with a default but the data and the target.

Relative paths in the config (data root, profile, state) are taken from the current directory,
as a shell would. ``EDGEEVO_DATA_ROOT`` in the environment overrides ``[data] root``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeevo.errors import ConfigError
from edgeevo.space import OPS

DATA_ROOT_ENV = "EDGEEVO_DATA_ROOT"


@dataclass(frozen=True)
class SearchSection:
    space: str = "nasnet"
    strategy: str = "pareto"
    population: int = 100  # P: members alive at once
    sample: int = 25  # S: tournament size
    budget: int = 1000  # candidates evaluated in all (the paper's cycles plus the first P)
    seed: int = 0


@dataclass(frozen=True)
class SpaceSection:
    blocks: int = 5
    ops: list[str] = field(default_factory=lambda: list(OPS))


@dataclass(frozen=True)
class NetworkSection:
    cells: int = 2  # N normal cells per stage
    filters: int = 16  # F at the first stage
    resolution: int = 32
    classes: int = 10


@dataclass(frozen=True)
class DataSection:
    dataset: str = "cifar10"
    root: str = "~/.cache/edgeevo/data"
    download: bool = True
    # torchvision's per-file MD5 check: right for official copies, wrong for rebuilt ones.
    verify: bool = False
    train: int = 45000
    valid: int = 5000
    split_seed: int = 0


@dataclass(frozen=True)
class TrainSection:
    epochs: int = 4
    batch_size: int = 128
    learning_rate: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 3e-4
    grad_clip: float = 5.0


@dataclass(frozen=True)
class FinalSection(TrainSection):
    """Training of a chosen candidate before ``edgeevo export``: longer than [train], on the
    whole training pool by default, with [train]'s optimizer keys unless it sets its own. The
    network keeps the shape it was searched and timed at, so its latency stays the one the
    search measured."""

    epochs: int = 30
    train: int = 45000  # images of the training pool, all of it by default
    valid: int = 5000  # images of the validation pool, all of it by default


# The keys [final] takes from [train] when it does not set them.
_FINAL_INHERITS = ("batch_size", "learning_rate", "momentum", "weight_decay", "grad_clip")


@dataclass(frozen=True)
class DeviceSection:
    profile: str = ""  # empty: time on this machine with the thread settings below
    latency: str = "predict"  # from the profile; "measure" times each candidate here
    intra_op_threads: int = 1
    inter_op_threads: int = 1
    warmup: int = 10
    repeats: int = 50


@dataclass(frozen=True)
class WorkersSection:
    # Worker processes, each with one candidate in flight; "auto": one per CUDA device, or one
    # on a machine without CUDA.
    count: int | str = "auto"
    threads: int = 2  # torch threads per worker on CPU
    grace: float = 60.0  # seconds running candidates get to finish after SIGTERM or SIGINT
    time_limit: float = 0.0  # seconds one candidate may take in its worker; 0: no limit


@dataclass(frozen=True)
class StateSection:
    path: str = "runs/search/state.db"


@dataclass(frozen=True)
class TableSection:
    """Evaluation by lookup in a table of evaluated architectures instead of training."""

    path: str = ""  # empty: candidates are trained and timed
    architecture: str = "arch_str"  # the column of genotypes in their JSON form
    accuracy: str = "cifar10_test_acc"
    accuracy_unit: str = "percent"  # or "fraction"
    latency: str = "raspi4_ms"  # in ms


@dataclass(frozen=True)
class Config:
    search: SearchSection = field(default_factory=SearchSection)
    space: SpaceSection = field(default_factory=SpaceSection)
    network: NetworkSection = field(default_factory=NetworkSection)
    data: DataSection = field(default_factory=DataSection)
    train: TrainSection = field(default_factory=TrainSection)
    final: FinalSection = field(default_factory=FinalSection)
    objectives: dict[str, str] = field(
        default_factory=lambda: {"accuracy": "max", "latency_ms": "min", "flops": "min"}
    )
    limits: dict[str, float] = field(default_factory=dict)
    device: DeviceSection = field(default_factory=DeviceSection)
    workers: WorkersSection = field(default_factory=WorkersSection)
    state: StateSection = field(default_factory=StateSection)
    table: TableSection = field(default_factory=TableSection)
    source: str = "<defaults>"

    @property
    def data_root(self) -> Path:
        """The data root after the environment override, with ``~`` expanded."""
        return Path(os.environ.get(DATA_ROOT_ENV) or self.data.root).expanduser()

    @property
    def state_path(self) -> Path:
        return Path(self.state.path).expanduser()

    def to_json(self) -> dict[str, Any]:
        doc = dataclasses.asdict(self)
        doc.pop("source")
        return doc


# Lower bounds of the numeric keys: a value below is rejected with the bound in the message.
_MINIMUM: dict[str, float] = {
    "search.population": 2,
    "search.sample": 1,
    "search.budget": 1,
    "space.blocks": 1,
    "network.cells": 1,
    "network.filters": 1,
    "network.resolution": 8,
    "network.classes": 2,
    "data.train": 1,
    "data.valid": 1,
    "train.epochs": 1,
    "train.batch_size": 1,
    "train.learning_rate": 0.0,
    "train.momentum": 0.0,
    "train.weight_decay": 0.0,
    "train.grad_clip": 0.0,
    "final.epochs": 1,
    "final.batch_size": 1,
    "final.learning_rate": 0.0,
    "final.momentum": 0.0,
    "final.weight_decay": 0.0,
    "final.grad_clip": 0.0,
    "final.train": 1,
    "final.valid": 1,
    "device.intra_op_threads": 1,
    "device.inter_op_threads": 1,
    "device.warmup": 0,
    "device.repeats": 1,
    "workers.count": 1,
    "workers.threads": 1,
    "workers.grace": 0.0,
    "workers.time_limit": 0.0,
}

# Upper bounds: past them a value is a typo, not a search (and would exhaust the machine).
_MAXIMUM: dict[str, float] = {
    "space.blocks": 16,
    "network.cells": 64,
    "network.filters": 4096,
    "network.resolution": 1024,
    "train.epochs": 10000,
    "train.batch_size": 65536,
    "final.epochs": 10000,
    "final.batch_size": 65536,
    "device.intra_op_threads": 1024,
    "device.inter_op_threads": 1024,
    "device.warmup": 100000,
    "device.repeats": 100000,
    "workers.count": 1024,
    "workers.threads": 1024,
}

# Keys that must be strictly above their minimum: zero would silently break training.
_POSITIVE = {"train.learning_rate", "train.grad_clip", "final.learning_rate", "final.grad_clip"}

_CHOICES: dict[str, tuple[str, ...]] = {
    "search.space": ("nasnet", "nb201"),
    "search.strategy": ("pareto", "aging", "random"),
    "table.accuracy_unit": ("percent", "fraction"),
    "data.dataset": ("cifar10",),
    "device.latency": ("predict", "measure"),
    "workers.count": ("auto",),
}


def load_config(path: str | Path) -> Config:
    """Read and check a config file; ConfigError names the file, the key and what is accepted."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {str(path)!r} cannot be read: {exc}") from exc
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid TOML: {exc}") from exc
    return parse_config(doc, source=str(path))


def parse_config(doc: dict[str, Any], *, source: str = "<config>") -> Config:
    sections: dict[str, Any] = {}
    known = [f.name for f in dataclasses.fields(Config) if f.name != "source"]
    for name, raw in doc.items():
        if name not in known:
            raise ConfigError(
                f"{source}: unknown section [{name}]; known sections: {', '.join(known)}"
            )
        if not isinstance(raw, dict):
            raise ConfigError(f"{source}: [{name}] must be a table, got {raw!r}")
    for f in dataclasses.fields(Config):
        if f.name == "source" or f.name not in doc:
            continue
        raw = doc[f.name]
        if f.name == "final":
            continue  # built below, on top of [train]
        if f.name == "objectives":
            sections[f.name] = _parse_mapping(source, f.name, raw, str)
        elif f.name == "limits":
            sections[f.name] = _parse_mapping(source, f.name, raw, float)
        else:
            section_type = typing.get_type_hints(Config)[f.name]
            sections[f.name] = _parse_section(source, f.name, section_type, raw)
    # [final] takes the optimizer keys it does not set from [train], so a tuned learning rate
    # carries over to the final training.
    train = sections.get("train", TrainSection())
    inherited = {key: getattr(train, key) for key in _FINAL_INHERITS}
    sections["final"] = _parse_section(
        source, "final", FinalSection, {**inherited, **doc.get("final", {})}
    )
    config = Config(**sections, source=source)
    _check_relations(config)
    return config


def _parse_mapping(source: str, section: str, raw: dict[str, Any], kind: type) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if kind is float and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise ConfigError(f"{source}: [{section}] {key} = {value!r}; expected a number")
        if kind is float and not math.isfinite(value):
            raise ConfigError(f"{source}: [{section}] {key} = {value!r}; expected a finite number")
        if kind is str and not isinstance(value, str):
            raise ConfigError(f"{source}: [{section}] {key} = {value!r}; expected a string")
        out[key] = kind(value)
    return out


def _parse_section(source: str, section: str, cls: type, raw: dict[str, Any]) -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    values: dict[str, Any] = {}
    for key, value in raw.items():
        where = f"{section}.{key}"
        if key not in names:
            raise ConfigError(
                f"{source}: unknown key {key!r} in [{section}]; known keys: {', '.join(names)}"
            )
        values[key] = _check_value(source, where, hints[key], value)
    return cls(**values)


def _check_value(source: str, where: str, hint: Any, value: Any) -> Any:
    section, key = where.split(".")
    shown = f"{source}: [{section}] {key} = {value!r}"
    if isinstance(hint, types.UnionType):
        # A key that takes a number or a word, such as ``count = 4`` or ``count = "auto"``.
        members = typing.get_args(hint)
        words = _CHOICES.get(where, ())
        if isinstance(value, str) and value in words:
            return value
        if int not in members or isinstance(value, bool) or not isinstance(value, int):
            accepted = " or ".join(["a whole number", *map(repr, words)])
            raise ConfigError(f"{shown}; expected {accepted}")
        hint = int
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{shown}; expected true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{shown}; expected a whole number")
    elif hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{shown}; expected a number")
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(f"{shown}; expected a finite number")
    elif hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{shown}; expected a string")
        choices = _CHOICES.get(where)
        if choices is not None and value not in choices:
            raise ConfigError(f"{shown}; expected one of: {', '.join(choices)}")
    elif typing.get_origin(hint) is list or isinstance(hint, types.GenericAlias):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{shown}; expected a list of strings")
        value = list(value)
    minimum = _MINIMUM.get(where)
    if minimum is not None and where in _POSITIVE and value <= minimum:
        raise ConfigError(f"{shown}; expected more than {minimum:g}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{shown}; expected at least {minimum:g}")
    maximum = _MAXIMUM.get(where)
    if maximum is not None and value > maximum:
        raise ConfigError(f"{shown}; expected at most {maximum:g}")
    if where == "state.path" and not value.strip():
        raise ConfigError(f"{shown}; expected the path of a state file")
    return value


def _check_relations(config: Config) -> None:
    src = config.source
    from edgeevo.fitness import Limits, Objectives
    from edgeevo.space import NasnetSpace

    for build, section in (
        (lambda: Objectives.from_config(config.objectives), "objectives"),
        (lambda: Limits.from_config(config.limits), "limits"),
        (lambda: NasnetSpace(blocks=config.space.blocks, ops=tuple(config.space.ops)), "space"),
    ):
        try:
            build()
        except ConfigError as exc:
            message = str(exc)
            if not message.startswith("["):
                message = f"[{section}] {message}"
            raise ConfigError(f"{src}: {message}") from None
    if config.search.space != "nasnet":
        from edgeevo.space import create_space

        create_space(config)
    _check_table(config)
    search = config.search
    if search.sample > search.population:
        raise ConfigError(
            f"{src}: [search] sample = {search.sample} is larger than population = "
            f"{search.population}; the tournament samples from the population"
        )
    if config.data.dataset == "cifar10" and config.network.classes != 10:
        raise ConfigError(
            f"{src}: [network] classes = {config.network.classes}; CIFAR-10 has 10 classes"
        )
    if config.data.valid > 5000 or config.data.train > 45000:
        raise ConfigError(
            f"{src}: [data] train = {config.data.train}, valid = {config.data.valid}; the fixed "
            "split of the 50,000 training images holds at most 45000 and 5000"
        )
    if config.final.valid > 5000 or config.final.train > 45000:
        raise ConfigError(
            f"{src}: [final] train = {config.final.train}, valid = {config.final.valid}; the "
            "fixed split of the 50,000 training images holds at most 45000 and 5000"
        )


def _check_table(config: Config) -> None:
    """A table gives accuracy and latency only: objectives and limits must keep to those."""
    if not config.table.path:
        return
    src = config.source
    other = sorted(set(config.objectives) - {"accuracy", "latency_ms"})
    if other:
        raise ConfigError(
            f"{src}: [objectives] {other[0]} cannot be looked up in [table]; a table gives "
            'accuracy and latency_ms: set [objectives] accuracy = "max", latency_ms = "min"'
        )
    limited = sorted(set(config.limits) - {"latency_ms"})
    if limited:
        raise ConfigError(
            f"{src}: [limits] {limited[0]} cannot be checked with [table]; a table gives "
            "latency_ms only"
        )
    for key in ("architecture", "accuracy", "latency"):
        if not getattr(config.table, key).strip():
            raise ConfigError(f"{src}: [table] {key} is empty; expected the name of a column")
