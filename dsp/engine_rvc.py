"""The RVC engine for the streamer: block-wise conversion with a pitch cache.

A port of the reference realtime path (RVC-Project WebUI `infer/rtrvc.py`, `RVC.infer`,
and `realtime_gui.py`): a 16 kHz copy of the window is kept up to date by resampling only
the new block (plus 20 ms of context, whose first 10 ms are discarded); content features
run over the whole window; retrieval is applied from `skip_head` on; f0 is estimated only
over the newest block + 50 ms and written into a pitch cache that spans the window
(dropping 3 edge frames at the start and 1 at the end); the synthesizer produces only
the returned frames (`skip_head`/`return_length`); formant shift renders
`return_length * 2^(formant/12)` frames and squeezes them back into `return_length` by
resampling, with the pitch pre-compensated. Resampling uses soxr.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soxr
import torch
from torch.nn import functional as F

from .pitch import HOP, SAMPLE_RATE, PitchEstimator, coarse_pitch, fill_unvoiced, make_estimator
from .rvc_window import RvcModels
from .stream_params import StreamParams

RMVPE_CHUNK = 5120
"""rmvpe's input is rounded up to a multiple of this many 16 kHz samples (minus one hop)."""


class RvcEngine:
    """Streams an RVC voice model (see module docstring)."""

    name = "rvc"

    def __init__(
        self,
        models: RvcModels,
        rmvpe_path: str | Path | None = None,
        device: str = "cpu",
        estimator_factory: Callable[[str], PitchEstimator] | None = None,
    ) -> None:
        self.models = models
        self.device = torch.device(device)
        self.rmvpe_path = rmvpe_path
        self.dtype = next(models.voice.synth.parameters()).dtype
        """Precision of the networks (the voice model's; rmvpe runs in it too)."""
        self._make_estimator = estimator_factory or (
            lambda m: make_estimator(m, rmvpe_path, device, self.dtype)
        )
        self._estimators: dict[str, PitchEstimator] = {}
        self.rate = 0

    def estimator(self, method: str) -> PitchEstimator:
        """The estimator `method`, created on first use and kept."""
        if method not in self._estimators:
            self._estimators[method] = self._make_estimator(method)
        return self._estimators[method]

    def prepare(self, rate: int, window: int, tail: int, block: int) -> None:
        zc = rate // 100
        self.rate = rate
        self.zc = zc
        self.block = block
        self.tail = tail
        self.block16 = HOP * block // zc
        self.buf16 = np.zeros(HOP * window // zc, dtype=np.float32)
        self.skip_head = (window - tail) // zc
        self.return_length = tail // zc
        self.p_len = len(self.buf16) // HOP
        self.f0_cache = np.zeros(self.p_len, dtype=np.float64)

    def reset(self) -> None:
        self.buf16[:] = 0
        self.f0_cache[:] = 0

    def successor(self, models: RvcModels, rmvpe_path: str | Path | None, device: str) -> RvcEngine:
        """An engine for other voice models. With the same rmvpe file and device it shares
        this one's pitch estimators (they do not depend on the voice), so a model swap
        neither reloads rmvpe nor builds a network in the worker."""
        dtype = next(models.voice.synth.parameters()).dtype
        if rmvpe_path != self.rmvpe_path or torch.device(device) != self.device or dtype != self.dtype:
            return RvcEngine(models, rmvpe_path, device)
        twin = RvcEngine(models, rmvpe_path, device, self._make_estimator)
        twin._estimators = self._estimators
        return twin

    def prime(self, window: np.ndarray, params: StreamParams, previous: object = None) -> None:
        """Give an engine swapped into a running stream full context: the input side
        (the 16 kHz copy of the window and its pitch cache, which do not depend on the
        voice model) is taken over from the `previous` RVC engine when it streamed the
        same shape, and otherwise computed from the whole window at once."""
        if (
            isinstance(previous, RvcEngine)
            and previous.rate == self.rate
            and previous.buf16.shape == self.buf16.shape
            and previous.f0_cache.shape == self.f0_cache.shape
        ):
            self.buf16[:] = previous.buf16
            self.f0_cache[:] = previous.f0_cache
            return
        fresh = soxr.resample(window, self.rate, SAMPLE_RATE, quality="HQ")
        n = min(len(fresh), len(self.buf16))
        self.buf16[-n:] = fresh[-n:]
        if self.models.voice.f0:
            f0 = self.estimator(params.f0_method)(self.buf16)
            self.f0_cache[:] = f0[: self.p_len]

    def fork(self) -> RvcEngine:
        """A twin for another channel: the same models and estimators, its own state."""
        return self.successor(self.models, self.rmvpe_path, str(self.device))

    def _update_16k(self, window: np.ndarray) -> None:
        fresh = soxr.resample(window[-(self.block + 2 * self.zc) :], self.rate, SAMPLE_RATE, quality="HQ")
        self.buf16[: -self.block16] = self.buf16[self.block16 :]
        n = self.block16 + HOP
        self.buf16[-n:] = fresh[HOP : HOP + n]

    @torch.inference_mode()
    def _features(self, params: StreamParams, timings: dict[str, float]) -> torch.Tensor:
        models = self.models
        t0 = time.perf_counter()
        wav = torch.from_numpy(self.buf16)[None].to(next(models.encoder.parameters()))
        feats = models.encoder.features(wav, models.voice.version).float()
        feats = torch.cat((feats, feats[:, -1:, :]), 1)
        t1 = time.perf_counter()
        timings["content"] = timings.get("content", 0.0) + 1000 * (t1 - t0)
        if models.index is not None and params.index_rate > 0:
            head = self.skip_head // 2
            blended = models.index.blend(feats[0, head:].cpu().numpy(), params.index_rate)
            feats[0, head:] = torch.from_numpy(blended).to(feats)
            timings["retrieval"] = timings.get("retrieval", 0.0) + 1000 * (time.perf_counter() - t1)
        feats = F.interpolate(feats.transpose(1, 2), scale_factor=2).transpose(1, 2)
        return feats[:, : self.p_len]

    def _update_pitch(self, method: str, timings: dict[str, float]) -> None:
        t0 = time.perf_counter()
        n = self.block16 + 800
        if method == "rmvpe":
            n = RMVPE_CHUNK * ((n - 1) // RMVPE_CHUNK + 1) - HOP
        f0 = self.estimator(method)(self.buf16[-n:])
        shift = self.block16 // HOP
        self.f0_cache[:-shift] = self.f0_cache[shift:]
        fresh = f0[3:-1]
        self.f0_cache[-len(fresh) :] = fresh
        timings["pitch"] = timings.get("pitch", 0.0) + 1000 * (time.perf_counter() - t0)

    @torch.inference_mode()
    def convert(self, window: np.ndarray, params: StreamParams, timings: dict[str, float]) -> np.ndarray:
        models = self.models
        voice = models.voice
        models.check_speaker(params.speaker)
        t0 = time.perf_counter()
        self._update_16k(window)
        timings["resample"] = timings.get("resample", 0.0) + 1000 * (time.perf_counter() - t0)
        feats = self._features(params, timings)
        factor = 2 ** (params.formant / 12)
        length2 = math.ceil(self.return_length * factor)
        pitch = pitchf = None
        if voice.f0:
            self._update_pitch(params.f0_method, timings)
            hz = fill_unvoiced(self.f0_cache) * 2 ** ((params.pitch - params.formant) / 12)
            pitch = torch.from_numpy(coarse_pitch(hz))[None].to(self.device)
            # f0 stays float32 in every precision: the sine source integrates its phase.
            nsf = (hz * length2 / self.return_length).astype(np.float32)
            pitchf = torch.from_numpy(nsf)[None].to(self.device)
        t1 = time.perf_counter()
        out = voice.synth.infer(
            feats.to(self.dtype),
            torch.tensor([self.p_len], device=self.device),
            pitch,
            pitchf,
            torch.tensor([params.speaker], device=self.device),
            skip_head=self.skip_head,
            return_length=self.return_length,
            return_length2=length2,
        )
        audio = out.audio[0, 0].float().cpu().numpy()
        t2 = time.perf_counter()
        timings["synthesizer"] = timings.get("synthesizer", 0.0) + 1000 * (t2 - t1)
        frame = voice.sample_rate // 100
        claimed = frame
        if length2 != self.return_length:
            # Formant shift: the longer render is declared to be at factor x the rate,
            # which raises every frequency by factor while restoring the duration.
            claimed = int(math.floor(factor * frame))
            audio = audio[: self.return_length * claimed]
        result = soxr.resample(audio, claimed * 100, self.rate, quality="HQ")
        timings["resample"] += 1000 * (time.perf_counter() - t2)
        result = result[: self.tail]
        return np.pad(result, (0, self.tail - len(result))).astype(np.float32)
