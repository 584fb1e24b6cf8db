"""Loudness envelope matching ("rms_mix"), as RVC's `change_rms` does it.

RVC computes half-second RMS frames with librosa (centred, zero-padded frames of one
second, hop half a second), stretches both envelopes linearly to the output length and
scales the output by rms_in^(1-rate) * rms_out^(rate-1) (RVC-Project WebUI
`infer/vc/pipeline.py`). librosa is not a dependency here, so the framing is written out.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F


def rms_envelope(audio: np.ndarray, rate: int) -> np.ndarray:
    """RMS per half second of `audio` (frames of 2*hop samples centred every hop)."""
    hop = rate // 2
    frame = hop * 2
    padded = np.pad(np.asarray(audio, dtype=np.float32), (frame // 2, frame // 2))
    count = 1 + (len(padded) - frame) // hop
    frames = np.lib.stride_tricks.sliding_window_view(padded, frame)[::hop][:count]
    return np.sqrt(np.mean(np.square(frames), axis=1))


def _stretch(env: np.ndarray, length: int) -> torch.Tensor:
    t = torch.from_numpy(env.astype(np.float32))[None, None]
    return F.interpolate(t, size=length, mode="linear").squeeze()


def mix_rms(
    source: np.ndarray, source_rate: int, output: np.ndarray, output_rate: int, mix: float
) -> np.ndarray:
    """Give `output` the loudness envelope of `source`: mix 1 = keep output's, 0 = source's."""
    if mix >= 1.0 or len(output) == 0:
        return output
    rms_in = _stretch(rms_envelope(source, source_rate), len(output))
    rms_out = torch.clamp(_stretch(rms_envelope(output, output_rate), len(output)), min=1e-6)
    gain = torch.pow(rms_in, 1 - mix) * torch.pow(rms_out, mix - 1)
    return (output * gain.numpy()).astype(np.float32)
