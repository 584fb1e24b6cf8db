"""Whole-file RVC conversion, as the reference `Pipeline.pipeline` runs it.

48 Hz high-pass (5th-order Butterworth, zero phase), reflect padding of `PAD_SECONDS`,
f0 of the whole padded file, long files split at their quietest point near every
`SPLIT_SECONDS`, each piece converted with its padding and the padding cut off again,
then the loudness envelope mix (RVC-Project WebUI `infer/vc/pipeline.py`, float32
settings x_pad 1, x_query 6, x_center 38, x_max 41).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import signal

from .loudness import mix_rms
from .pitch import HOP, SAMPLE_RATE, PitchEstimator
from .rvc_window import RvcModels, RvcParams, convert_window

PAD_SECONDS = 1
QUERY_SECONDS = 6
SPLIT_SECONDS = 38
SPLIT_ABOVE_SECONDS = 41
_HIGHPASS = signal.butter(N=5, Wn=48, btype="high", fs=SAMPLE_RATE)


def _pad(audio: np.ndarray, n: int) -> np.ndarray:
    """Reflect-pad by n samples each side (zero-pad when the audio is too short to reflect)."""
    mode = "reflect" if len(audio) > n else "constant"
    return np.pad(audio, (n, n), mode=mode)


def split_points(audio: np.ndarray) -> list[int]:
    """Sample positions (16 kHz) where a long file is cut: the quietest 10 ms near each
    multiple of `SPLIT_SECONDS`."""
    t_max = SAMPLE_RATE * SPLIT_ABOVE_SECONDS
    padded = np.pad(audio, (HOP // 2, HOP // 2), mode="reflect")
    if len(padded) <= t_max:
        return []
    energy = np.convolve(np.abs(padded), np.ones(HOP), mode="valid")[: len(audio)]
    t_query = SAMPLE_RATE * QUERY_SECONDS
    points = []
    for t in range(SAMPLE_RATE * SPLIT_SECONDS, len(audio), SAMPLE_RATE * SPLIT_SECONDS):
        window = energy[t - t_query : t + t_query]
        points.append(t - t_query + int(np.argmin(window)))
    return points


def convert_offline(
    models: RvcModels,
    audio16k: np.ndarray,
    estimator: PitchEstimator | None,
    params: RvcParams,
    rms_mix: float = 1.0,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Convert a whole 16 kHz mono signal; returns float32 audio at the model rate.

    `progress(done, total)` is called after the pitch pass and after every piece.
    """
    voice = models.voice
    if voice.f0 and estimator is None:
        raise ValueError("this voice model needs a pitch estimator")
    audio = signal.filtfilt(*_HIGHPASS, audio16k).astype(np.float32)
    t_pad = SAMPLE_RATE * PAD_SECONDS
    t_pad_tgt = voice.sample_rate * PAD_SECONDS
    cuts = split_points(audio)
    total = len(cuts) + 2
    padded = _pad(audio, t_pad)
    f0 = estimator(padded)[: len(padded) // HOP] if voice.f0 and estimator else None
    if progress:
        progress(1, total)
    pieces = []
    start = 0
    for i, cut in enumerate([*cuts, None]):
        end = len(padded) if cut is None else cut // HOP * HOP + 2 * t_pad + HOP
        f0_piece = None
        if f0 is not None:
            f0_piece = f0[start // HOP : None if cut is None else (cut // HOP * HOP + 2 * t_pad) // HOP]
        out = convert_window(models, padded[start:end], f0_piece, params)
        pieces.append(out[t_pad_tgt:-t_pad_tgt])
        if cut is not None:
            start = cut // HOP * HOP
        if progress:
            progress(i + 2, total)
    # The content encoder drops the last partial 20 ms frame; pad so that the output lasts
    # exactly as long as the input.
    expected = len(audio) * voice.sample_rate // SAMPLE_RATE
    converted = np.concatenate(pieces)[:expected]
    converted = np.pad(converted, (0, expected - len(converted)))
    return mix_rms(audio, SAMPLE_RATE, converted, voice.sample_rate, rms_mix)
