"""RVC's pitch post-processing on torch tensors, on whatever device the networks run.

The same steps as the numpy functions in `pitch.py` and `rmvpe.decode_salience`: the
rmvpe local-average decode, gap filling, the semitone shift and the 1..255 coarse pitch.
Every step keeps the input's shape and never reads a value back to the host (no
boolean-mask indexing, no `.item()`), so a GPU block can run them without a host round
trip and inside a captured CUDA graph. In float64 they equal the numpy path to round-off
(tests/test_device_pitch.py).
"""

from __future__ import annotations

import torch

from .pitch import _MEL_MAX, _MEL_MIN
from .rmvpe import _CENTS, THRESHOLD

_HALF = 4
"""Bins either side of the salience peak in the local average (reference: 4)."""


def decode_salience(salience: torch.Tensor, threshold: float = THRESHOLD) -> torch.Tensor:
    """Salience [frames, 360] -> f0 Hz [frames] (0 = unvoiced), as `rmvpe.decode_salience`.

    Computed in the salience's dtype (float32 from the network, float64 to match numpy).
    """
    cents_table = torch.as_tensor(_CENTS, dtype=salience.dtype, device=salience.device)
    padded = torch.nn.functional.pad(salience, (_HALF, _HALF))
    center = torch.argmax(salience, dim=1, keepdim=True) + _HALF
    idx = center + torch.arange(-_HALF, _HALF + 1, device=salience.device)[None, :]
    weights = torch.gather(padded, 1, idx)
    cents = (weights * cents_table[idx]).sum(dim=1) / weights.sum(dim=1)
    cents = cents.masked_fill(padded.amax(dim=1) <= threshold, 0)
    f0 = 10 * torch.pow(2, cents / 1200)
    return f0.masked_fill(f0 == 10, 0)


def fill_unvoiced(f0: torch.Tensor) -> torch.Tensor:
    """f0 [frames] Hz with unvoiced (<= 0) frames linearly interpolated between their voiced
    neighbours, held flat before the first and after the last; all-unvoiced stays as it is
    (`pitch.fill_unvoiced`, i.e. numpy's `interp`)."""
    n = f0.shape[-1]
    idx = torch.arange(n, device=f0.device)
    voiced = f0 > 0
    # Index of the nearest voiced frame at or before / at or after each frame; -1 / n if none.
    before = torch.cummax(torch.where(voiced, idx, -1), dim=-1).values
    after = torch.cummin(torch.where(voiced, idx, n).flip(-1), dim=-1).values.flip(-1)
    has_before, has_after = before >= 0, after < n
    f_before = f0.gather(-1, before.clamp(0, n - 1))
    f_after = f0.gather(-1, after.clamp(0, n - 1))
    span = (after - before).clamp(min=1).to(f0.dtype)
    between = f_before + (f_after - f_before) * (idx - before).to(f0.dtype) / span
    filled = torch.where(has_before & has_after, between, torch.where(has_before, f_before, f_after))
    return torch.where(voiced | ~(has_before | has_after), f0, filled)


def shift_semitones(f0: torch.Tensor, semitones: float | torch.Tensor) -> torch.Tensor:
    """f0 times 2^(semitones/12). A tensor `semitones` lets a captured graph read the shift
    from device memory, so a pitch change needs no recapture."""
    return f0 * torch.pow(2.0, torch.as_tensor(semitones, dtype=f0.dtype, device=f0.device) / 12)


def coarse_pitch(f0: torch.Tensor) -> torch.Tensor:
    """f0 Hz -> RVC's 1..255 mel-scale pitch bins (int64), as `pitch.coarse_pitch`."""
    mel = 1127 * torch.log(1 + f0 / 700)
    scaled = (mel - _MEL_MIN) * 254 / (_MEL_MAX - _MEL_MIN) + 1
    mel = torch.where(mel > 0, scaled, mel).clamp(1, 255)
    return torch.round(mel).to(torch.int64)
