"""What the output limiter costs the worker: milliseconds per block (median, p99) and the
share of the block's duration, for the limiter alone and for a WORLD block with and
without it, timed alternately in one run (this machine is shared: compare within a run).
Also the true peak in and out for voice-like material 6 dB over full scale.

Usage: .venv/bin/python benchmarks/limiter_bench.py [--rate 48000] [--blocks 200]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from rvcd.dsp.benchmark import voice_like_signal
from rvcd.dsp.engine_world import WorldEngine
from rvcd.dsp.limiter import TruePeakLimiter, true_peak_db
from rvcd.dsp.precision import cpu_info
from rvcd.dsp.stream_params import StreamParams
from rvcd.dsp.streamer import Streamer, StreamShape


def _ms(times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)
    return 1000 * ordered[len(ordered) // 2], 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=int, default=48000, help="sample rate, Hz")
    parser.add_argument("--blocks", type=int, default=200, help="blocks timed per case")
    args = parser.parse_args()
    cpu = cpu_info()
    print(f"CPU: {cpu.model} ({cpu.cores} cores; {' '.join(cpu.isa)})")
    rate = args.rate
    loud = voice_like_signal(rate, 20.0) * np.float32(2.0 / 0.5)

    print("\nthe limiter alone")
    print(f"{'block s':>8} {'median ms':>10} {'p99 ms':>8} {'share of block':>15}")
    for seconds in (0.05, 0.1, 0.25):
        n = int(seconds * rate)
        limiter = TruePeakLimiter(rate)
        times = []
        for k in range(args.blocks):
            block = np.roll(loud, -k * n)[:n]
            began = time.perf_counter()
            limiter.process(block)
            times.append(time.perf_counter() - began)
        p50, p99 = _ms(times)
        print(f"{seconds:>8g} {p50:>10.3f} {p99:>8.3f} {p50 / (1000 * seconds):>15.4f}")

    print("\na WORLD block (0.1 s, extra 0.1 s, crossfade 0.02 s), alternately without and with it")
    shape = StreamShape.from_seconds(rate, 0.1, 0.02, 0.1)
    plain = Streamer(WorldEngine(), shape)
    limited = Streamer(WorldEngine(), shape)
    limiter = TruePeakLimiter(rate)
    params = StreamParams(pitch=3.0)
    without, with_limiter, raws, outs = [], [], [], []
    for k in range(args.blocks):
        block = np.roll(loud, -k * shape.block)[: shape.block] * np.float32(0.25)
        began = time.perf_counter()
        plain.process(block, params)
        without.append(time.perf_counter() - began)
        began = time.perf_counter()
        raw = limited.process(block, params) * np.float32(4.0)
        outs.append(limiter.process(raw))
        with_limiter.append(time.perf_counter() - began)
        raws.append(raw)
    (a50, a99), (b50, b99) = _ms(without), _ms(with_limiter)
    print(f"{'':>14} {'median ms':>10} {'p99 ms':>8}")
    print(f"{'without':>14} {a50:>10.3f} {a99:>8.3f}")
    print(f"{'with limiter':>14} {b50:>10.3f} {b99:>8.3f}")
    print(f"ratio of medians: {b50 / a50:.3f}")
    print(
        f"\nthat WORLD output, 12 dB louder: {true_peak_db(np.concatenate(raws), rate):+.2f} dBTP in, "
        f"{true_peak_db(np.concatenate(outs), rate):+.2f} dBTP out (ceiling {limiter.ceiling_db:g}); "
        f"the limiter's delay {limiter.delay} samples ({1000 * limiter.delay / rate:.2f} ms)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
