"""RVC conversion of one window: 16 kHz audio + f0 -> audio at the voice model's rate.

The steps of the reference `Pipeline.vc` (RVC-Project WebUI `infer/vc/pipeline.py`):
content features, optional faiss retrieval blended by `index_rate`, features doubled to
100 frames/s, consonant protection, then the synthesizer. The streamer (live daemon) and
the offline whole-file path both call `convert_window`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from .content_encoder import ContentEncoder
from .content_loader import load_content_encoder
from .conv_layout import prepare
from .pitch import HOP, coarse_pitch, fill_unvoiced, shift_semitones
from .retrieval import RetrievalIndex
from .safe_load import ModelFileError
from .voice_model import VoiceModel, load_voice_model


@dataclass
class RvcParams:
    """Per-conversion settings (units in the names' docs)."""

    pitch: float = 0.0
    """Pitch shift, semitones."""
    index_rate: float = 0.75
    """Blend of retrieved features, 0..1 (ignored without an index)."""
    speaker: int = 0
    """Speaker id, 0..n_speakers-1."""
    protect: float = 0.33
    """Keep this share of the raw features in unvoiced frames, 0..0.5 (0.5 = off)."""


def load_live_voice(model: str | Path, device: str, dtype: torch.dtype) -> VoiceModel:
    """A voice `.pth` loaded for conversion: its synthesizer in `dtype`, readied for
    `device` (`conv_layout.prepare`)."""
    voice = load_voice_model(model, device=device, dtype=dtype)
    voice.synth = prepare(voice.synth, device, dtype)
    return voice


def load_live_encoder(hubert: str | Path, device: str, dtype: torch.dtype) -> ContentEncoder:
    """A content encoder loaded for conversion, in `dtype`, readied for `device`."""
    return prepare(load_content_encoder(hubert), device, dtype)


@dataclass
class RvcModels:
    """Everything the RVC engine needs loaded: voice, content encoder, optional index."""

    voice: VoiceModel
    encoder: ContentEncoder
    index: RetrievalIndex | None = None

    @classmethod
    def load(
        cls,
        model: str | Path,
        hubert: str | Path,
        index: str | Path | None = None,
        device: str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> RvcModels:
        """Load a voice `.pth`, a content encoder and an optional `.index`, checked together;
        both networks run in `dtype` and are readied for `device` (`conv_layout.prepare`)."""
        voice = load_live_voice(model, device, dtype)
        encoder = load_live_encoder(hubert, device, dtype)
        problem = encoder.mismatch(voice.version, voice.meta.phone_dim)
        if problem:
            raise ModelFileError(f"{hubert} cannot serve {model}: {problem}")
        loaded_index = RetrievalIndex.load(index, expected_dim=voice.meta.phone_dim) if index else None
        return cls(voice=voice, encoder=encoder, index=loaded_index)

    def check_speaker(self, speaker: int) -> None:
        n = self.voice.meta.n_speakers
        if not 0 <= speaker < n:
            raise ValueError(f"speaker {speaker} outside 0..{n - 1} for this model")


def pitch_inputs(f0: np.ndarray, semitones: float) -> tuple[np.ndarray, np.ndarray]:
    """Estimator f0 (Hz, 0 = unvoiced) -> (coarse 1..255, Hz) as the synthesizer takes them.

    Gaps are filled and the shift applied as the reference realtime path does.
    """
    hz = shift_semitones(fill_unvoiced(f0), semitones)
    return coarse_pitch(hz), hz.astype(np.float32)


@torch.inference_mode()
def content_features(
    models: RvcModels, audio16k: np.ndarray, params: RvcParams
) -> tuple[torch.Tensor, torch.Tensor]:
    """(features with retrieval blended in, raw features), each [1, frames, dim] at 100/s."""
    first = next(models.encoder.parameters())
    wav = torch.from_numpy(np.ascontiguousarray(audio16k, dtype=np.float32))[None]
    raw = models.encoder.features(wav.to(first), models.voice.version).float()
    device = first.device
    feats = raw
    if models.index is not None and params.index_rate > 0:
        blended = models.index.blend(raw[0].cpu().numpy(), params.index_rate)
        feats = torch.from_numpy(blended)[None].to(device)

    def double(x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x.transpose(1, 2), scale_factor=2).transpose(1, 2)

    doubled = double(feats)
    return doubled, (double(raw) if feats is not raw else doubled)


@torch.inference_mode()
def convert_window(
    models: RvcModels,
    audio16k: np.ndarray,
    f0: np.ndarray | None,
    params: RvcParams,
    skip_head: int | None = None,
    return_length: int | None = None,
) -> np.ndarray:
    """Convert one window of 16 kHz mono audio; returns float32 audio at the model rate.

    `f0` is the estimator output for this window (Hz per 10 ms, at least
    `len(audio16k)//160` frames, 0 = unvoiced), None for no-f0 models.
    `skip_head`/`return_length` (frames at 100/s) ask the synthesizer for only the frames
    a streaming block needs.
    """
    voice = models.voice
    models.check_speaker(params.speaker)
    if voice.f0 and f0 is None:
        raise ValueError("this voice model needs pitch: pass the f0 of the window")
    device = next(voice.synth.parameters()).device
    dtype = next(voice.synth.parameters()).dtype
    feats, raw = content_features(models, audio16k, params)
    p_len = min(len(audio16k) // HOP, feats.shape[1])
    feats = feats[:, :p_len]
    pitch = pitchf = None
    if voice.f0 and f0 is not None:
        f0 = np.asarray(f0)[:p_len]
        if len(f0) < p_len:
            raise ValueError(f"f0 has {len(f0)} frames, the window needs {p_len}")
        coarse, hz = pitch_inputs(f0, params.pitch)
        pitch = torch.from_numpy(coarse)[None].to(device)
        # f0 stays float32 in every precision: the sine source integrates its phase.
        pitchf = torch.from_numpy(hz)[None].to(device)
        if params.protect < 0.5:
            # The reference masks on pitchf after filling gaps, which leaves nothing to
            # protect; the estimator's own voicing decision is used here instead.
            voiced = torch.from_numpy(f0 > 0).to(device=device, dtype=feats.dtype)[None, :, None]
            weight = voiced + (1 - voiced) * params.protect
            feats = feats * weight + raw[:, :p_len] * (1 - weight)
    out = voice.synth.infer(
        feats.to(dtype),
        torch.tensor([p_len], device=device),
        pitch,
        pitchf,
        torch.tensor([params.speaker], device=device),
        skip_head=skip_head,
        return_length=return_length,
        return_length2=return_length,
    )
    return out.audio[0, 0].float().cpu().numpy()
