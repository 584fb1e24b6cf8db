"""Shared fixtures: the golden directory (RVCD_GOLDEN_DIR) and random-weight test models."""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)


def golden_dir() -> Path:
    """The golden directory: $RVCD_GOLDEN_DIR, default ../shared/golden from the project root."""
    return Path(os.environ.get("RVCD_GOLDEN_DIR", ROOT.parent / "shared" / "golden")).resolve()


def load_manifest(name: str) -> dict:
    """A manifest of the golden directory; {} when that manifest is absent."""
    path = golden_dir() / name
    return json.loads(path.read_text()) if path.is_file() else {}


@pytest.fixture(scope="session")
def golden() -> Path:
    d = golden_dir()
    if not d.is_dir():
        pytest.skip(f"golden directory {d} does not exist (set RVCD_GOLDEN_DIR to run golden tests)")
    return d


def manifest_entries(manifest: str, keep: Callable[[str, Any], bool]) -> list[Any]:
    """Parameters for a test run once per entry of `manifest` that `keep(name, entry)`
    selects. Without the golden directory (or that manifest) the one parameter is a skip
    that says so, not pytest's bare "got empty parameter set"."""
    d = golden_dir()
    if not d.is_dir():
        reason = f"golden directory {d} does not exist (set RVCD_GOLDEN_DIR to run golden tests)"
    elif not (d / manifest).is_file():
        reason = f"{manifest} is not in the golden directory {d}"
    else:
        return [k for k, v in load_manifest(manifest).items() if keep(k, v)]
    return [pytest.param(None, marks=pytest.mark.skip(reason=reason), id="no-golden")]


def voice_entries() -> list[Any]:
    return manifest_entries("manifest.json", lambda _, v: "version" in v)


def rmvpe_entries() -> list[Any]:
    return manifest_entries("manifest.json", lambda _, v: "architecture" in v)


def noisy_tone(f0: float, seconds: float, rate: int = 16000, seed: int = 0) -> np.ndarray:
    """A harmonic tone at f0 Hz with a little noise (float32): WORLD's harvest needs the noise."""
    t = np.arange(int(seconds * rate)) / rate
    x = sum(0.3 / k * np.sin(2 * np.pi * k * f0 * t) for k in (1, 2, 3))
    rng = np.random.default_rng(seed)
    return (x + 0.005 * rng.standard_normal(len(t))).astype(np.float32)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """make(version, rate, f0) -> directory with voice.pth, hubert/, voice.index, rmvpe.pt."""
    from rvcd.dsp import test_models
    from rvcd.dsp.voice_model import PHONE_DIMS

    cache: dict[tuple, Path] = {}

    def make(version: str = "v2", rate: int = 40000, f0: bool = True) -> Path:
        key = (version, rate, f0)
        if key not in cache:
            d = tmp_path_factory.mktemp(f"model-{version}-{rate}-{int(f0)}")
            test_models.write_voice_model(d / "voice.pth", version, rate, f0)
            test_models.write_content_encoder(d / "hubert", "tiny", version)
            test_models.write_index(d / "voice.index", PHONE_DIMS[version], rows=500)
            test_models.write_rmvpe(d / "rmvpe.pt")
            cache[key] = d
        return cache[key]

    return make
