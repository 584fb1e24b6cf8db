"""The YAML configuration: schema, defaults, validation with messages that name the key.

Every key has a type, a default and (for numbers) an allowed range; unknown keys are
errors. Relative paths are resolved against the configuration file's directory.
"""

from __future__ import annotations

import logging
import re
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from rvcd.control.osc_server import resolve_senders
from rvcd.daemon.engines import ENGINE_KINDS, EngineSpec
from rvcd.dsp.atomic_file import write_atomically
from rvcd.dsp.input_limits import DEFAULT_MAX_MODEL_MB
from rvcd.dsp.limiter import DEFAULT_CEILING_DB
from rvcd.dsp.pitch import methods as f0_methods
from rvcd.dsp.precision import DEFAULT_PRECISION, PRECISIONS, cpu_info
from rvcd.dsp.precision import resolve as resolve_precision
from rvcd.dsp.stream_params import MAX_SPEAKER, RANGES, StreamParams
from rvcd.dsp.streamer import SHAPE_DEFAULTS, SHAPE_RANGES

PHYSICAL_PORTS = "@physical"
"""In a connect list: the hardware ports, in order (in_N from the N-th capture port,
out_N to the N-th playback port; a single channel plays to the first two)."""
JACK_CLIENT_NAME_MAX = 63
"""Longest JACK client name, bytes (jack.h: JACK_CLIENT_NAME_SIZE 64 with the NUL)."""


class ConfigError(ValueError):
    """The configuration is invalid; the message names the key, the value and what is allowed."""


@dataclass(frozen=True)
class JackConfig:
    client_name: str = "rvcd"
    server_name: str | None = None
    channels: int = 1
    connect_inputs: list[str] = field(default_factory=list)
    """Per input, a regular expression for the ports to connect from, or PHYSICAL_PORTS."""
    connect_outputs: list[str] = field(default_factory=list)
    underrun: str = "dry"
    monitor: bool = False
    """Also register monitor_N ports (what the speaker should hear)."""
    connect_monitor: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class EngineConfig:
    kind: str = "world"
    model: Path | None = None
    index: Path | None = None
    hubert: Path | None = None
    rmvpe: Path | None = None
    f0_method: str = "rmvpe"
    world_f0: str = "dio"
    device: str = "cpu"
    precision: str = DEFAULT_PRECISION
    threads: int = 0
    block: float = SHAPE_DEFAULTS["block"]
    extra: float = SHAPE_DEFAULTS["extra"]
    crossfade: float = SHAPE_DEFAULTS["crossfade"]
    headroom: float = 0.1
    pitch: float = 0.0
    formant: float = 0.0
    index_rate: float = 0.0
    speaker: int = 0
    gate: float = -120.0
    rms_mix: float = 1.0
    protect: float = 0.33
    gain: float = 0.0
    monitor_mix: float = 1.0
    monitor_gain: float = 0.0
    limiter: bool = False
    """A true-peak limiter on the outputs (the virtual microphone's feed)."""
    limiter_ceiling: float = DEFAULT_CEILING_DB
    """The limiter's ceiling, dBTP."""
    max_model_mb: float = DEFAULT_MAX_MODEL_MB

    def worker_threads(self) -> int:
        """Torch threads for the worker: `threads`, or by default one fewer than the
        cores, leaving one to JACK, its clients and rvcd's own audio callback. Measured
        under a real jackd on 2 cores (bf16, block 0.15 s): with 2 threads every
        preemption of one thread stalls the other at the end of each parallel step, and
        blocks took 171 ms (p50, load 1.14) against 94 ms with nothing else running;
        with 1 thread 145 ms (load 0.97)."""
        return self.threads or max(1, cpu_info().cores - 1)


@dataclass(frozen=True)
class OscConfig:
    enabled: bool = True
    bind: str = "127.0.0.1"
    port: int = 9000
    allowed_senders: list[str] = field(default_factory=list)
    reply_port: int | None = None
    meter_rate: float = 10.0
    query_port: int | None = 0


@dataclass(frozen=True)
class VirtualMicConfig:
    """A PipeWire virtual source fed by the outputs (see daemon/virtual_mic.py)."""

    enabled: bool = False
    name: str = "rvcd-mic"
    """PipeWire node.name: what `pw-record --target` and scripts use."""
    description: str = "rvcd voice"
    """What applications show in their microphone list."""


@dataclass(frozen=True)
class LogConfig:
    level: str = "info"
    stats_interval: float = 60.0


@dataclass(frozen=True)
class Config:
    jack: JackConfig = field(default_factory=JackConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    osc: OscConfig = field(default_factory=OscConfig)
    virtual_mic: VirtualMicConfig = field(default_factory=VirtualMicConfig)
    models_dir: Path | None = None
    presets_dir: Path | None = None
    """Where /rvcd/preset/save writes and /rvcd/preset/load reads (created on first save)."""
    log: LogConfig = field(default_factory=LogConfig)
    source: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    """Dotted keys set on the command line over the file (kept across reloads)."""

    def engine_spec(self) -> EngineSpec:
        e = self.engine
        return EngineSpec(e.kind, e.model, e.hubert, e.index, e.rmvpe, e.device, e.world_f0, e.precision)

    def initial_params(self) -> StreamParams:
        e = self.engine
        return StreamParams(
            pitch=e.pitch,
            formant=e.formant,
            index_rate=e.index_rate,
            f0_method=e.f0_method,
            speaker=e.speaker,
            gate=e.gate,
            rms_mix=e.rms_mix,
            protect=e.protect,
            gain=e.gain,
            monitor_mix=e.monitor_mix,
            monitor_gain=e.monitor_gain,
        )


# Numeric ranges beyond the conversion parameters' own.
_RANGES: dict[str, tuple[float, float]] = {
    "jack.channels": (1, 16),
    "engine.threads": (0, 256),
    **{f"engine.{k}": v for k, v in SHAPE_RANGES.items()},
    "engine.headroom": (0.0, 5.0),
    "engine.speaker": (0, MAX_SPEAKER),
    "engine.max_model_mb": (1.0, 65536.0),
    "engine.limiter_ceiling": (-20.0, 0.0),
    "osc.port": (0, 65535),
    "osc.reply_port": (1, 65535),
    "osc.query_port": (0, 65535),
    "osc.meter_rate": (0.1, 100.0),
    "log.stats_interval": (0.0, 86400.0),
    **{f"engine.{k}": v for k, v in RANGES.items()},
}
_CHOICES: dict[str, tuple[str, ...]] = {
    "jack.underrun": ("dry", "silence"),
    "engine.kind": ENGINE_KINDS,
    "engine.world_f0": ("dio", "harvest"),
    "engine.precision": PRECISIONS,
    "log.level": ("debug", "info", "warning", "error"),
}
_RENAMED = {"engine.dtype": "engine.precision (auto | fp32 | bf16 | fp16)"}
_PATHS = {"engine.model", "engine.index", "engine.hubert", "engine.rmvpe", "models_dir", "presets_dir"}
_TOP_LEVEL_PATHS = ("models_dir", "presets_dir")
_SECTIONS = {
    "jack": JackConfig,
    "engine": EngineConfig,
    "osc": OscConfig,
    "virtual_mic": VirtualMicConfig,
    "log": LogConfig,
}


def _describe(value: Any) -> str:
    return repr(value) if not isinstance(value, str) else f"'{value}'"


def _coerce(key: str, value: Any, default: Any, annotation: str, base: Path) -> Any:
    """Check one value against its declared type, range and choices."""
    optional = "None" in annotation
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{key}: a value is required (default {_describe(default)})")
    if annotation.startswith("bool"):
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: {_describe(value)} is not true/false")
        return value
    if annotation.startswith("int") or annotation == "int | None":
        if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
            raise ConfigError(f"{key}: {_describe(value)} is not a whole number")
        value = int(value)
    elif annotation.startswith("float"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: {_describe(value)} is not a number")
        value = float(value)
    elif annotation.startswith("list"):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{key}: {_describe(value)} is not a list of strings")
        return list(value)
    elif annotation.startswith("Path"):
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{key}: {_describe(value)} is not a path")
        path = Path(value).expanduser()
        return path if path.is_absolute() else (base / path)
    elif annotation.startswith("str") and not isinstance(value, str):
        raise ConfigError(f"{key}: {_describe(value)} is not a string")
    if key in _RANGES:
        lo, hi = _RANGES[key]
        if not lo <= value <= hi:
            raise ConfigError(f"{key}: {value} is outside the allowed range {lo:g}..{hi:g}")
    if key in _CHOICES and value not in _CHOICES[key]:
        raise ConfigError(f"{key}: {_describe(value)} is not one of {', '.join(_CHOICES[key])}")
    return value


def _section(name: str, cls: type, raw: Any, base: Path) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{name}: expected a mapping of keys, got {_describe(raw)}")
    known = {f.name: f for f in fields(cls)}
    for key in raw:
        if f"{name}.{key}" in _RENAMED:
            raise ConfigError(f"{name}.{key}: renamed to {_RENAMED[f'{name}.{key}']}")
        if key not in known:
            raise ConfigError(f"{name}.{key}: unknown key (known keys: {', '.join(sorted(known))})")
    values = {}
    for key, f in known.items():
        default = f.default_factory() if f.default is MISSING else f.default
        if key in raw:
            values[key] = _coerce(f"{name}.{key}", raw[key], default, str(f.type), base)
    return cls(**values)


def parse_config(data: Any, base: Path, source: Path | None = None) -> Config:
    """Validate parsed YAML (a mapping) into a `Config`."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"the configuration must be a mapping of sections, got {_describe(data)}")
    allowed = set(_SECTIONS) | set(_TOP_LEVEL_PATHS)
    for key in data:
        if key not in allowed:
            raise ConfigError(f"{key}: unknown section (known: {', '.join(sorted(allowed))})")
    sections = {name: _section(name, cls, data.get(name), base) for name, cls in _SECTIONS.items()}
    paths = {key: _coerce(key, data.get(key), None, "Path | None", base) for key in _TOP_LEVEL_PATHS}
    cfg = Config(**sections, **paths, source=source)
    _cross_check(cfg)
    return cfg


def changed_keys(old: Config, new: Config) -> list[str]:
    """The dotted keys whose values differ between two configurations."""
    keys = [
        f"{name}.{f.name}"
        for name in _SECTIONS
        for f in fields(getattr(old, name))
        if getattr(getattr(old, name), f.name) != getattr(getattr(new, name), f.name)
    ]
    return keys + [key for key in _TOP_LEVEL_PATHS if getattr(old, key) != getattr(new, key)]


def _cross_check(cfg: Config) -> None:
    e = cfg.engine
    if e.crossfade > e.block:
        raise ConfigError(f"engine.crossfade: {e.crossfade:g} s is longer than engine.block ({e.block:g} s)")
    if e.f0_method not in f0_methods():
        raise ConfigError(f"engine.f0_method: '{e.f0_method}' is not one of {', '.join(f0_methods())}")
    try:
        resolve_precision(e.precision, e.device)
    except (ValueError, RuntimeError) as exc:
        raise ConfigError(f"engine.precision: {exc} (engine.device is '{e.device}')") from exc
    if e.kind == "rvc":
        for key in ("model", "hubert"):
            if getattr(e, key) is None:
                raise ConfigError(f"engine.{key}: required when engine.kind is 'rvc'")
        if e.f0_method == "rmvpe" and e.rmvpe is None:
            raise ConfigError("engine.rmvpe: required when engine.f0_method is 'rmvpe' (path of rmvpe.pt)")
    for key in ("model", "index", "hubert", "rmvpe"):
        path = getattr(e, key)
        if path is not None and e.kind == "rvc" and not path.exists():
            raise ConfigError(f"engine.{key}: {path} does not exist")
    if cfg.models_dir is not None and not cfg.models_dir.is_dir():
        raise ConfigError(f"models_dir: {cfg.models_dir} is not a directory")
    if cfg.presets_dir is not None and not cfg.presets_dir.parent.is_dir():
        raise ConfigError(f"presets_dir: {cfg.presets_dir.parent} (where it would be made) does not exist")
    name = cfg.jack.client_name
    if not name or len(name.encode()) > JACK_CLIENT_NAME_MAX or ":" in name:
        raise ConfigError(
            f"jack.client_name: '{name}' must be 1..{JACK_CLIENT_NAME_MAX} bytes without ':' (JACK's limit)"
        )
    mic = cfg.virtual_mic
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,63}", mic.name):
        raise ConfigError(
            f"virtual_mic.name: '{mic.name}' must be 1..63 letters, digits, '.', '_' or '-' "
            "(a PipeWire node name)"
        )
    description_ok = 0 < len(mic.description.encode()) <= JACK_CLIENT_NAME_MAX
    if not description_ok or re.search(r'[:"\\\x00-\x1f]', mic.description):
        raise ConfigError(
            f"virtual_mic.description: {mic.description!r} must be 1..{JACK_CLIENT_NAME_MAX} bytes "
            "without ':', '\"', '\\' or control characters (it names the device's JACK ports)"
        )
    try:
        resolve_senders(cfg.osc.allowed_senders)
    except ValueError as exc:
        raise ConfigError(f"osc.allowed_senders: {exc}") from None
    if cfg.osc.bind not in ("127.0.0.1", "localhost", "::1") and not cfg.osc.allowed_senders:
        logging.getLogger("rvcd.config").warning(
            "osc.bind is %s with no osc.allowed_senders: any host that can reach it may control rvcd",
            cfg.osc.bind,
        )


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (PyYAML would keep
    the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key '{key}' appears twice (lines {seen[key] + 1} and {key_node.start_mark.line + 1})",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def save_config(path: Path, text: str, overrides: dict[str, Any] | None = None) -> Config:
    """Write configuration `text` to `path` only if it loads (with `overrides`), without
    ever leaving a broken or half-written file; returns the configuration it holds."""
    loaded: list[Config] = []

    def write_checked(tmp: Path) -> None:
        tmp.write_text(text)
        loaded.append(load_config(tmp, overrides))

    write_atomically(path, write_checked)
    return replace(loaded[0], source=path)


def _override(data: Any, overrides: dict[str, Any]) -> Any:
    """`data` (parsed YAML) with dotted keys replaced, e.g. {"osc.port": 0}."""
    if not overrides:
        return data
    merged = {k: dict(v) if isinstance(v, dict) else v for k, v in (data or {}).items()}
    for key, value in overrides.items():
        section, _, name = key.partition(".")
        if not isinstance(merged.get(section, {}), dict):
            raise ConfigError(f"{section}: expected a mapping of keys, got {merged[section]!r}")
        merged.setdefault(section, {})[name] = value
    return merged


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> Config:
    """Read and validate a configuration file, with `overrides` (dotted keys from the
    command line) applied over it and validated like the rest."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration ({exc.strerror})") from exc
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from exc
    try:
        cfg = parse_config(_override(data, overrides or {}), path.resolve().parent, path)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    return replace(cfg, overrides=dict(overrides or {}))
