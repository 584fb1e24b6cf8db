"""Band-limited resampling as a torch convolution, for blocks that stay on the GPU.

soxr (`audio_io.resample`) is the CPU path; it runs on the host only, so a CUDA block
that used it would copy its audio down and up again between the stages. This is a
Kaiser-windowed sinc, polyphase by construction: for a rate change reduced to
`up`/`down`, `up` filters of `2 * half_width + down` taps, one strided `conv1d`, fixed
shapes (captured in a CUDA graph as is). The kernel follows torchaudio's
`_get_sinc_resample_kernel` (torchaudio `functional/functional.py`), which cannot be
imported here (its wheel does not load against this torch), with a longer filter than
its "kaiser_best" setting. Output sample k lies at input time k * down / up, as soxr's does.
Its measured passband ripple and alias rejection against soxr's are in
`benchmarks/resampler_quality.py` (`resample_quality.measure`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn import functional as F

ZERO_CROSSINGS = 96
"""Sinc zero crossings each side of the centre (filter length). With `ROLLOFF` the
passband is flat to 0.9 of Nyquist as soxr HQ's is; torchaudio's "kaiser_best" (64 and
0.9476) droops 0.022 dB there (measured, `benchmarks/resampler_quality.py`)."""
ROLLOFF = 0.96
"""Cut-off as a share of the lower rate's Nyquist frequency."""
BETA = 14.769656459379492
"""Kaiser window shape: about 140 dB of stop-band attenuation ("kaiser_best"'s value)."""


@dataclass(frozen=True)
class SincResampler:
    """Resample [..., samples] tensors from `rate_in` to `rate_out` Hz on `kernel`'s device."""

    rate_in: int
    rate_out: int
    up: int
    down: int
    half_width: int
    """Input samples of context each side, per output phase."""
    kernel: torch.Tensor
    """[up, 1, 2 * half_width + down] filter taps, one row per output phase."""

    @classmethod
    def build(
        cls,
        rate_in: int,
        rate_out: int,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        zero_crossings: int = ZERO_CROSSINGS,
        rolloff: float = ROLLOFF,
        beta: float = BETA,
    ) -> SincResampler:
        if rate_in <= 0 or rate_out <= 0:
            raise ValueError(f"sample rates must be positive, got {rate_in} -> {rate_out} Hz")
        g = math.gcd(rate_in, rate_out)
        down, up = rate_in // g, rate_out // g
        cutoff = min(down, up) * rolloff
        half_width = math.ceil(zero_crossings * down / cutoff)
        # Taps in float64, then cast: the window's edge and the sinc's tails need the range.
        taps = torch.arange(-half_width, half_width + down, dtype=torch.float64)[None, None] / down
        t = (torch.arange(0, -up, -1, dtype=torch.float64)[:, None, None] / up + taps) * cutoff
        t = t.clamp(-zero_crossings, zero_crossings)
        i0, beta_t = torch.special.i0, torch.tensor(beta, dtype=torch.float64)
        window = i0(beta_t * torch.sqrt(1 - (t / zero_crossings) ** 2)) / i0(beta_t)
        phase = t * math.pi
        sinc = torch.where(phase == 0, torch.ones_like(phase), torch.sin(phase) / phase)
        kernel = (sinc * window * (cutoff / down)).to(device=device, dtype=dtype)
        return cls(rate_in, rate_out, up, down, half_width, kernel)

    def output_length(self, n: int) -> int:
        """Samples out for `n` samples in: ceil(n * up / down)."""
        return -(-n * self.up // self.down)

    def __call__(self, audio: torch.Tensor) -> torch.Tensor:
        """[..., n] at `rate_in` -> [..., output_length(n)] at `rate_out`, in the kernel's dtype."""
        if self.up == self.down:
            return audio
        lead = audio.shape[:-1]
        n = audio.shape[-1]
        x = F.pad(audio.reshape(-1, 1, n), (self.half_width, self.half_width + self.down))
        y = F.conv1d(x, self.kernel, stride=self.down)
        y = y.transpose(1, 2).reshape(x.shape[0], -1)
        return y[:, : self.output_length(n)].reshape(*lead, -1)
