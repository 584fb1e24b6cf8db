"""Model hot-swap under continuous audio with full-size random-weight models: the load
time, the process's peak memory during the swap, the longest silence in the output, the
largest sample step, and how much of the audio played dry (the worker was late) while
the swap was under way versus before and after it.

Usage: .venv/bin/python benchmarks/swap_bench.py [--block 3.0 --extra 0.5 --headroom 3.0 --period 1024]
(the player/recorder and private jackd come from the test suite's tests/jack_rig.py).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from jack_rig import RATE, JackServer, Rig  # noqa: E402
from osc_probe import OscProbe  # noqa: E402

from rvcd.daemon.config import parse_config  # noqa: E402
from rvcd.daemon.service import Daemon  # noqa: E402
from rvcd.dsp import test_models  # noqa: E402
from rvcd.dsp.benchmark import voice_like_signal  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--block", type=float, default=3.0)
    parser.add_argument("--extra", type=float, default=0.5)
    parser.add_argument("--headroom", type=float, default=3.0)
    parser.add_argument("--period", type=int, default=1024, help="JACK period, frames")
    parser.add_argument(
        "--to-sr", choices=list(test_models.RATES), default="40k", help="rate of the model swapped to"
    )
    parser.add_argument(
        "--seconds", type=float, default=30.0, help="audio played; the swap is requested at 1/3"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "models").mkdir()
        print("writing full-size test models ...", flush=True)
        test_models.write_voice_model(d / "models" / "a.pth", "v2", 40000, True, "full", seed=0)
        to_sr = test_models.RATES[args.to_sr]
        test_models.write_voice_model(d / "models" / "b.pth", "v2", to_sr, True, "full", seed=1)
        test_models.write_content_encoder(d / "hubert", "full", "v2")
        test_models.write_rmvpe(d / "rmvpe.pt", "full")
        server = JackServer(period=args.period, realtime=True)
        raw = {
            "jack": {"server_name": server.name},
            "engine": {
                "kind": "rvc",
                "model": str(d / "models" / "a.pth"),
                "hubert": str(d / "hubert"),
                "rmvpe": str(d / "rmvpe.pt"),
                "block": args.block,
                "extra": args.extra,
                "headroom": args.headroom,
                "threads": 2,
            },
            "osc": {"port": 0},
            "log": {"stats_interval": 0},
            "models_dir": str(d / "models"),
        }
        daemon = Daemon(parse_config(raw, d))
        daemon.start()
        rig = Rig(server.name)
        probe = OscProbe(daemon.osc.port)
        replies: list = []
        marks: dict[str, tuple[float, int]] = {}

        def mark(name: str) -> None:
            marks[name] = (time.monotonic(), daemon.status()["underruns"])

        try:
            x = voice_like_signal(RATE, args.seconds)
            at = args.seconds / 3

            def swap() -> None:
                mark("request")
                probe.send("/rvcd/model", "b.pth")
                replies.extend(probe.replies(60.0, until=("/rvcd/model/loaded", "/rvcd/error")))
                # the last block the old model converted plays one latency later
                time.sleep(daemon.latency_samples() / RATE)
                mark("settled")

            timer = threading.Timer(at, swap)
            began = time.monotonic()
            mark("start")
            timer.start()
            y = rig.play(x, tail_seconds=1.0)
            timer.join()
            mark("end")
            elapsed = time.monotonic() - began
        finally:
            probe.close()
            rig.close()
            status = daemon.status()
            daemon.stop()
            server.stop()
    lat = daemon.latency_samples()
    out = y[lat + int(2 * args.block * RATE) : lat + len(x)]
    quiet = np.abs(out) < 1e-4
    runs, run = [0], 0
    for q in quiet:
        run = run + 1 if q else 0
        runs.append(run)
    steps = np.abs(np.diff(out))
    report = daemon.swapper.last_report
    print(f"played {args.seconds:.0f} s in {elapsed:.1f} s; replies: {replies}")
    print(
        f"swap: load {report.get('load_s', float('nan')):.2f} s, "
        f"install {report.get('swap_s', float('nan')):.2f} s, "
        f"peak memory {report.get('peak_mib', 0):.0f} MiB (before {report.get('rss_before_mib', 0):.0f} MiB, "
        f"after {report.get('rss_after_mib', 0):.0f} MiB)"
    )
    print(
        f"longest silence in the output: {max(runs) / RATE * 1000:.1f} ms "
        f"(block {args.block * 1000:.0f} ms); "
        f"largest step {steps.max():.3f}; underruns {status['underruns']} periods of {args.period}, "
        f"xruns {status['xruns']}, late blocks {status['late_blocks']}, load {status['load']:.2f}"
    )
    period_s = args.period / RATE
    spans = {"before": ("start", "request"), "during": ("request", "settled"), "after": ("settled", "end")}
    for label, (a, b) in spans.items():
        seconds = marks[b][0] - marks[a][0]
        dry = (marks[b][1] - marks[a][1]) * period_s
        share = 100 * dry / max(seconds, 1e-9)
        print(f"dry {label} the swap: {dry:.2f} s of {seconds:.1f} s ({share:.0f} %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
