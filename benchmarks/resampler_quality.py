"""The torch resampler (GPU path) against soxr HQ (CPU path): quality and time per block.

For every rate change a live graph needs (48/44.1 kHz in -> 16 kHz; 32/40/48 kHz model
rates -> 48 kHz out) it prints, for both resamplers, `resample_quality.measure`'s
passband ripple, worst residual and alias rejection, and the median time of one call on
a 1 s window (the streamer resamples about that much per block), on the CPU and, when
torch sees one, on the GPU (synchronised).

Usage: .venv/bin/python benchmarks/resampler_quality.py [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import soxr
import torch

from rvcd.dsp.precision import cpu_info
from rvcd.dsp.resample_quality import measure
from rvcd.dsp.torch_resample import SincResampler

RATES = [(48000, 16000), (44100, 16000), (32000, 48000), (40000, 48000), (48000, 48000)]


def _median_ms(call: Callable[[], object], sync: Callable[[], None], repeats: int = 50) -> float:
    for _ in range(5):
        call()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        call()
        sync()
        times.append(1000 * (time.perf_counter() - t0))
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"CPU: {cpu_info().describe()}, torch {torch.__version__}, {args.threads} threads")
    if torch.cuda.is_available():
        print(f"GPU: {torch.cuda.get_device_name()}")
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for rate_in, rate_out in RATES:
        print(f"\n{rate_in} -> {rate_out} Hz")
        window = np.random.default_rng(0).uniform(-0.5, 0.5, rate_in).astype(np.float32)
        if rate_in != rate_out:

            def hq_resample(x: np.ndarray, a: int = rate_in, b: int = rate_out) -> np.ndarray:
                return soxr.resample(x, a, b, quality="HQ")

            hq = measure(hq_resample, rate_in, rate_out)
            ms = _median_ms(lambda f=hq_resample, w=window: f(w), lambda: None)
            print(f"  soxr HQ   cpu : {hq.line()}; {ms:6.3f} ms per 1 s window")
        for device in devices:
            resampler = SincResampler.build(rate_in, rate_out, device=device)
            quality = measure(
                lambda x, r=resampler, d=device: r(torch.from_numpy(x).to(d)).cpu().numpy(), rate_in, rate_out
            )
            x = torch.from_numpy(window).to(device)
            sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
            ms = _median_ms(lambda r=resampler, x=x: r(x), sync)
            taps = resampler.kernel.shape[-1]
            print(f"  torch sinc {device:4s}: {quality.line()}; {ms:6.3f} ms per 1 s window ({taps} taps)")


if __name__ == "__main__":
    main()
