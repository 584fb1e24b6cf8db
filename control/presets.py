"""Presets: named sets of conversion parameters (and optionally a voice model) in YAML.

A preset is `presets_dir/NAME.yaml` holding any of `pitch`, `formant`, `index_rate`,
`f0_method`, `gate`, `rms_mix` and `model` (a name inside `models_dir`). A voice model
may carry a default preset, `models_dir/STEM.preset.yaml` beside `STEM.pth`, applied
when that model is swapped in. Names arriving over the network are confined like model
names; files are small, read with the safe YAML loader, checked key by key (an unknown
key or an out-of-range value refuses the whole preset) and written atomically.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rvcd.dsp.atomic_file import write_atomically
from rvcd.dsp.pitch import methods as f0_methods
from rvcd.dsp.stream_params import RANGES, StreamParams

PRESET_PARAMS = ("pitch", "formant", "index_rate", "f0_method", "gate", "rms_mix")
"""The parameters a preset holds."""
MAX_PRESET_BYTES = 16384
MAX_LISTED = 200
"""Presets listed in one reply."""
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.+-]{0,63}")


class PresetError(ValueError):
    """A preset that cannot be saved or loaded; the message says why."""


@dataclass(frozen=True)
class Preset:
    values: dict[str, Any] = field(default_factory=dict)
    """Parameter name -> value, only those the preset sets."""
    model: str | None = None
    """A model name inside models_dir to swap in with the values."""


def _checked_name(name: str) -> str:
    if not _NAME.fullmatch(name) or ".." in name:
        raise PresetError(f"{name!r} is not a preset name (letters, digits, space, _ . + -; up to 64)")
    return name


def preset_path(presets_dir: Path | None, name: str) -> Path:
    if presets_dir is None:
        raise PresetError("no presets_dir is configured, so presets cannot be saved or loaded")
    return presets_dir / f"{_checked_name(name)}.yaml"


def model_preset_path(model: Path) -> Path:
    """The default preset of a voice model file: `STEM.preset.yaml` beside it."""
    return model.with_name(f"{model.stem}.preset.yaml")


def _value(name: str, value: Any, source: Path) -> Any:
    if name == "f0_method":
        if value not in f0_methods():
            raise PresetError(f"{source}: f0_method {value!r} is not one of {', '.join(f0_methods())}")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PresetError(f"{source}: {name} {value!r} is not a number")
    lo, hi = RANGES[name]
    if not lo <= value <= hi:
        raise PresetError(f"{source}: {name} {value} is outside {lo:g}..{hi:g}")
    return float(value)


def read_preset(path: Path) -> Preset:
    """Read and check one preset file; PresetError names the file and the problem."""
    try:
        if path.stat().st_size > MAX_PRESET_BYTES:
            raise PresetError(f"{path}: over {MAX_PRESET_BYTES} bytes, not a preset")
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise PresetError(f"{path.name}: no such preset") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise PresetError(f"{path}: not a readable preset ({exc})") from None
    if not isinstance(data, dict):
        raise PresetError(f"{path}: a preset is a mapping of parameters")
    unknown = set(data) - {*PRESET_PARAMS, "model"}
    if unknown:
        raise PresetError(f"{path}: unknown keys {', '.join(sorted(map(str, unknown)))}")
    model = data.get("model")
    if model is not None and not isinstance(model, str):
        raise PresetError(f"{path}: model must be a file name inside models_dir")
    values = {k: _value(k, v, path) for k, v in data.items() if k != "model"}
    return Preset(values, model)


def write_preset(path: Path, params: StreamParams, model: str | None = None) -> None:
    """Write the preset parameters of `params` (and `model`) to `path`, atomically."""
    data: dict[str, Any] = {name: getattr(params, name) for name in PRESET_PARAMS}
    if model:
        data["model"] = model
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, lambda tmp: tmp.write_text(yaml.safe_dump(data, sort_keys=False)))


def list_presets(presets_dir: Path | None) -> list[str]:
    """Preset names in `presets_dir`, sorted (at most MAX_LISTED)."""
    if presets_dir is None or not presets_dir.is_dir():
        return []
    names = sorted(p.stem for p in presets_dir.glob("*.yaml") if _NAME.fullmatch(p.stem))
    return names[:MAX_LISTED]
