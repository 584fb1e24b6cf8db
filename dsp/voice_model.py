"""Load RVC voice model checkpoints (`.pth`): v1/v2, with or without f0, 32/40/48 kHz.

The checkpoint is a dict `{"weight": state_dict, "config": [18 hyper-parameters],
"info", "sr", "f0", "version"}` as RVC's training writes it. It is read with
`weights_only=True`, checked key by key, and turned into a float32 (or float16)
`Synthesizer` with weight norm folded.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from .safe_load import ModelFileError, load_checkpoint
from .synthesizer import SynthConfig, Synthesizer
from .weight_norm import fold_state_dict

PHONE_DIMS = {"v1": 256, "v2": 768}
"""Content-feature width each model version expects."""
_SR_NAMES = {"32k": 32000, "40k": 40000, "48k": 48000}


@dataclass(frozen=True)
class VoiceModelInfo:
    """What `rvcd inspect` reports about a voice model."""

    path: str
    version: str
    sample_rate: int
    f0: bool
    n_speakers: int
    phone_dim: int
    n_parameters: int
    info: str
    config: list[Any]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class VoiceModel:
    """A loaded voice model: the network and what is known about it."""

    synth: Synthesizer
    meta: VoiceModelInfo

    @property
    def sample_rate(self) -> int:
        return self.meta.sample_rate

    @property
    def version(self) -> str:
        return self.meta.version

    @property
    def f0(self) -> bool:
        return self.meta.f0


def _require(ckpt: dict[str, Any], key: str, kind: type | tuple[type, ...], path: Path) -> Any:
    if key not in ckpt:
        raise ModelFileError(f"{path}: not an RVC voice model: missing key '{key}'")
    value = ckpt[key]
    if not isinstance(value, kind):
        raise ModelFileError(
            f"{path}: key '{key}' has type {type(value).__name__}, expected {getattr(kind, '__name__', kind)}"
        )
    return value


def _synth_config(raw: list[Any], n_speakers: int, path: Path) -> SynthConfig:
    if len(raw) != 18:
        raise ModelFileError(f"{path}: key 'config' has {len(raw)} entries, expected the 18 hyper-parameters")
    try:
        sr = raw[17]
        sr = _SR_NAMES[sr] if isinstance(sr, str) else int(sr)
        cfg = SynthConfig(
            spec_channels=int(raw[0]),
            segment_size=int(raw[1]),
            inter_channels=int(raw[2]),
            hidden_channels=int(raw[3]),
            filter_channels=int(raw[4]),
            n_heads=int(raw[5]),
            n_layers=int(raw[6]),
            kernel_size=int(raw[7]),
            p_dropout=float(raw[8]),
            resblock=str(raw[9]),
            resblock_kernel_sizes=[int(k) for k in raw[10]],
            resblock_dilation_sizes=[[int(d) for d in ds] for ds in raw[11]],
            upsample_rates=[int(u) for u in raw[12]],
            upsample_initial_channel=int(raw[13]),
            upsample_kernel_sizes=[int(k) for k in raw[14]],
            spk_embed_dim=n_speakers,
            gin_channels=int(raw[16]),
            sample_rate=sr,
        )
    except (TypeError, ValueError, KeyError) as exc:
        raise ModelFileError(f"{path}: key 'config' holds an invalid hyper-parameter: {exc}") from exc
    if cfg.sample_rate not in (16000, 22050, 24000, 32000, 40000, 44100, 48000):
        raise ModelFileError(f"{path}: sample rate {cfg.sample_rate} Hz is not one RVC uses")
    problem = _config_problem(cfg)
    if problem:
        raise ModelFileError(f"{path}: key 'config' holds an invalid hyper-parameter: {problem}")
    return cfg


# Sane ranges of the hyper-parameters that size the network, a few times what any RVC
# model uses (192/768 channels, 2 heads, 6 layers, kernels up to 16, 109 speakers):
# a file may load only if the network it describes can be built and run.
_INT_RANGES = {
    "inter_channels": (1, 1024),
    "hidden_channels": (1, 1024),
    "filter_channels": (1, 8192),
    "n_heads": (1, 64),
    "n_layers": (1, 32),
    "kernel_size": (1, 31),
    "upsample_initial_channel": (1, 4096),
    "gin_channels": (1, 1024),
    "spk_embed_dim": (1, 65536),
}


def _config_problem(cfg: SynthConfig) -> str | None:
    """What is wrong with a synthesizer config, or None (names the config index too)."""
    for name, (lo, hi) in _INT_RANGES.items():
        value = getattr(cfg, name)
        if not lo <= value <= hi:
            return f"{name} = {value}, expected {lo}..{hi}"
    if cfg.hidden_channels % cfg.n_heads:
        return f"hidden_channels {cfg.hidden_channels} is not divisible by n_heads {cfg.n_heads}"
    if not 0 <= cfg.p_dropout < 1:
        return f"p_dropout = {cfg.p_dropout}, expected 0..1"
    if cfg.resblock not in ("1", "2"):
        return f"resblock = {cfg.resblock!r}, expected '1' or '2'"
    kernels, dilations = cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes
    if not 1 <= len(kernels) <= 8 or len(dilations) != len(kernels):
        return (
            f"{len(kernels)} resblock kernel sizes and {len(dilations)} dilation lists, expected 1..8 of each"
        )
    if not all(1 <= k <= 63 for k in kernels) or not all(1 <= len(ds) <= 8 for ds in dilations):
        return f"resblock kernel sizes {kernels} / dilations {dilations} outside 1..63 / 1..8 entries"
    if not all(1 <= d <= 64 for ds in dilations for d in ds):
        return f"resblock dilations {dilations} outside 1..64"
    ups, up_kernels = cfg.upsample_rates, cfg.upsample_kernel_sizes
    if not 1 <= len(ups) <= 8 or len(up_kernels) != len(ups):
        return f"{len(ups)} upsample rates and {len(up_kernels)} upsample kernel sizes, expected 1..8 of each"
    if not all(1 <= u <= 64 and u <= k <= 128 for u, k in zip(ups, up_kernels, strict=True)):
        return f"upsample rates {ups} / kernel sizes {up_kernels}: each rate 1..64, each kernel rate..128"
    hop = math.prod(ups)
    if hop * 100 != cfg.sample_rate:
        need = f"{cfg.sample_rate} Hz at 100 frames/s needs {cfg.sample_rate / 100:g}"
        return f"upsample rates {ups} make {hop} samples per frame; {need}"
    if cfg.upsample_initial_channel >> len(ups) < 1:
        return f"upsample_initial_channel {cfg.upsample_initial_channel} too small for {len(ups)} upsamplings"
    return None


def read_voice_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], VoiceModelInfo, SynthConfig]:
    """Read and validate a voice checkpoint without building the network."""
    path = Path(path)
    ckpt = load_checkpoint(path)
    if not isinstance(ckpt, dict):
        raise ModelFileError(f"{path}: not an RVC voice model (top level is {type(ckpt).__name__})")
    if "model" in ckpt and "weight" not in ckpt:
        raise ModelFileError(
            f"{path}: this looks like a training checkpoint (G_*.pth/D_*.pth) or another "
            "model kind: missing key 'weight'; export the small inference model from RVC"
        )
    weights = _require(ckpt, "weight", dict, path)
    raw_config = _require(ckpt, "config", (list, tuple), path)
    for key, value in weights.items():
        if not isinstance(value, torch.Tensor):
            raise ModelFileError(f"{path}: weight '{key}' is not a tensor")
    for key in ("emb_g.weight", "enc_p.emb_phone.weight"):
        if key not in weights:
            raise ModelFileError(f"{path}: not an RVC voice model: missing weight '{key}'")
    n_speakers = int(weights["emb_g.weight"].shape[0])
    phone_dim = int(weights["enc_p.emb_phone.weight"].shape[1])
    has_pitch = "enc_p.emb_pitch.weight" in weights
    f0_flag = ckpt.get("f0", 1)
    if f0_flag not in (0, 1, True, False):
        raise ModelFileError(f"{path}: key 'f0' is {f0_flag!r}, expected 0 or 1")
    if bool(f0_flag) != has_pitch:
        raise ModelFileError(
            f"{path}: key 'f0' is {f0_flag} but the weights "
            f"{'have' if has_pitch else 'lack'} a pitch embedding"
        )
    version = ckpt.get("version", "v1")
    if version not in PHONE_DIMS:
        raise ModelFileError(f"{path}: key 'version' is {version!r}, expected 'v1' or 'v2'")
    if PHONE_DIMS[version] != phone_dim:
        raise ModelFileError(
            f"{path}: key 'version' is {version} ({PHONE_DIMS[version]}-d features) but the "
            f"weights take {phone_dim}-d features"
        )
    cfg = _synth_config(list(raw_config), n_speakers, path)
    info = ckpt.get("info", "")
    meta = VoiceModelInfo(
        path=str(path),
        version=version,
        sample_rate=cfg.sample_rate,
        f0=has_pitch,
        n_speakers=n_speakers,
        phone_dim=phone_dim,
        n_parameters=0,
        info=str(info),
        config=list(raw_config),
    )
    return weights, meta, cfg


def load_voice_model(
    path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> VoiceModel:
    """Load a voice `.pth` into an eval-mode `Synthesizer` on `device` in `dtype`."""
    path = Path(path)
    weights, meta, cfg = read_voice_checkpoint(path)
    synth = Synthesizer(cfg, meta.phone_dim, meta.f0)
    state = {k: v for k, v in fold_state_dict(weights).items() if not k.startswith("enc_q.")}
    state = {k: v.float() for k, v in state.items()}
    try:
        result = synth.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise ModelFileError(f"{path}: weights do not match the network its config describes: {exc}") from exc
    if result.missing_keys or result.unexpected_keys:
        details = []
        if result.missing_keys:
            details.append(f"missing {', '.join(result.missing_keys[:5])}")
        if result.unexpected_keys:
            details.append(f"unexpected {', '.join(result.unexpected_keys[:5])}")
        raise ModelFileError(
            f"{path}: weights do not match the network its config describes: {'; '.join(details)}"
        )
    synth = synth.to(device=device, dtype=dtype).eval()
    n_params = sum(p.numel() for p in synth.parameters())
    meta = VoiceModelInfo(**{**meta.as_dict(), "n_parameters": n_params})
    return VoiceModel(synth=synth, meta=meta)
