"""Audio files in and out, channel mixdown and resampling (soxr)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from .input_limits import MAX_AUDIO_RATE, MAX_AUDIO_SECONDS, MIN_AUDIO_RATE


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Read any soundfile-supported file -> (float32 [samples, channels], rate in Hz)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such audio file")
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise ValueError(f"{path}: not a readable audio file ({exc})") from exc
    if not MIN_AUDIO_RATE <= info.samplerate <= MAX_AUDIO_RATE:
        raise ValueError(
            f"{path}: the header claims {info.samplerate} Hz; audio files at "
            f"{MIN_AUDIO_RATE}..{MAX_AUDIO_RATE} Hz are accepted"
        )
    if info.frames > MAX_AUDIO_SECONDS * info.samplerate:
        raise ValueError(
            f"{path}: {info.frames / info.samplerate / 3600:.1f} h of audio; at most "
            f"{MAX_AUDIO_SECONDS / 3600:g} h is converted at once (split the file)"
        )
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise ValueError(f"{path}: not a readable audio file ({exc})") from exc
    if data.shape[0] == 0:
        raise ValueError(f"{path}: the file holds no samples")
    if not np.isfinite(data).all():
        raise ValueError(f"{path}: the file holds NaN or infinite samples")
    return data, int(rate)


def to_mono(data: np.ndarray) -> np.ndarray:
    """Average the channels of [samples, channels] (or pass 1-D through), float32."""
    data = np.asarray(data, dtype=np.float32)
    return data if data.ndim == 1 else data.mean(axis=1)


def resample(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Band-limited resampling of mono float audio (soxr, high quality)."""
    if rate_in == rate_out:
        return np.asarray(audio, dtype=np.float32)
    return soxr.resample(np.asarray(audio, dtype=np.float32), rate_in, rate_out, quality="HQ")


def write_audio(path: str | Path, audio: np.ndarray, rate: int) -> None:
    """Write mono float audio as 16-bit PCM WAV (or the format the suffix names)."""
    sf.write(str(path), np.clip(audio, -1.0, 1.0), rate, subtype="PCM_16")
