"""The device-side pieces of a GPU block replay from a captured CUDA graph as they run eager.

Needs a CUDA device; skipped elsewhere (CI has none). What runs here: the text encoder's
relative-position attention (fixed-shape band), the pitch post-processing and the torch
resampler, captured once and replayed on new input written into the captured buffers.
"""

from __future__ import annotations

import pytest
import torch

from rvcd.dsp import device_pitch
from rvcd.dsp.nn_text_encoder import RelativeSelfAttention
from rvcd.dsp.torch_resample import SincResampler

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: CUDA graphs need one")


def _block(attn: RelativeSelfAttention, resampler: SincResampler, x, sal, audio, semitones):
    mask = torch.ones(1, 1, x.shape[-1], x.shape[-1], device=x.device)
    feats = attn(x, mask)
    f0 = device_pitch.fill_unvoiced(device_pitch.decode_salience(sal))
    hz = device_pitch.shift_semitones(f0, semitones)
    return feats, device_pitch.coarse_pitch(hz), hz, resampler(audio)


@torch.inference_mode()
def test_replay_equals_eager() -> None:
    torch.manual_seed(0)
    attn = RelativeSelfAttention(192, 2).cuda().eval()
    for p in attn.parameters():
        torch.nn.init.normal_(p, 0, 0.1)
    resampler = SincResampler.build(48000, 16000, device="cuda")
    inputs = [
        torch.randn(1, 192, 100, device="cuda"),
        torch.rand(100, 360, device="cuda"),
        torch.randn(1, 48000, device="cuda"),
        torch.tensor(0.0, device="cuda"),
    ]
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            _block(attn, resampler, *inputs)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured = _block(attn, resampler, *inputs)
    for seed in range(3):
        gen = torch.Generator(device="cuda").manual_seed(seed)
        fresh = [
            torch.randn(1, 192, 100, device="cuda", generator=gen),
            torch.rand(100, 360, device="cuda", generator=gen)
            * (torch.rand(100, 1, device="cuda", generator=gen) > 0.3),
            torch.randn(1, 48000, device="cuda", generator=gen),
            torch.tensor(float(seed * 5 - 5), device="cuda"),
        ]
        for static, new in zip(inputs, fresh, strict=True):
            static.copy_(new)
        graph.replay()
        torch.cuda.synchronize()
        for got, expected in zip(captured, _block(attn, resampler, *fresh), strict=True):
            peak = expected.abs().max().float().clamp(min=1e-12)
            assert (got.float() - expected.float()).abs().max() <= 1e-3 * peak
