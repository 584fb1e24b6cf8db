"""Soak run: rvcd under a private jackd (dummy backend) for a while, fed continuously with
a voice-like signal, then stopped; prints the xruns, underruns and late blocks it logged.

Usage: .venv/bin/python benchmarks/soak.py --minutes 10 --engine rvc --size full \\
           --block 1.5 --extra 0.5 --headroom 1.5
Without --model, random-weight test models of --size are written to a temporary directory.
"""

from __future__ import annotations

import argparse
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import jack
import numpy as np

from rvcd.dsp import test_models
from rvcd.dsp.benchmark import voice_like_signal

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--engine", choices=["world", "rvc"], default="rvc")
    parser.add_argument("--size", choices=["tiny", "full"], default="full")
    parser.add_argument("--block", type=float, default=1.5)
    parser.add_argument("--extra", type=float, default=0.5)
    parser.add_argument("--crossfade", type=float, default=0.05)
    parser.add_argument("--headroom", type=float, default=1.5)
    parser.add_argument("--period", type=int, default=256)
    parser.add_argument("--threads", type=int, default=0, help="engine.threads (0 = cores - 1)")
    parser.add_argument("--precision", default="auto", help="engine.precision (default auto)")
    parser.add_argument(
        "--no-realtime", action="store_true", help="run jackd without realtime scheduling (xruns under load)"
    )
    args = parser.parse_args()
    name = f"rvcd-soak-{int(time.time())}"
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        engine = f"  kind: {args.engine}\n"
        if args.engine == "rvc":
            test_models.write_voice_model(d / "voice.pth", "v2", 40000, True, args.size)
            test_models.write_content_encoder(d / "hubert", args.size, "v2")
            test_models.write_rmvpe(d / "rmvpe.pt", args.size)
            engine += f"  model: {d / 'voice.pth'}\n  hubert: {d / 'hubert'}\n  rmvpe: {d / 'rmvpe.pt'}\n"
        (d / "soak.yaml").write_text(
            f"jack:\n  server_name: {name}\nengine:\n{engine}  block: {args.block}\n  extra: {args.extra}\n"
            f"  crossfade: {args.crossfade}\n  headroom: {args.headroom}\n  threads: {args.threads}\n"
            f"  precision: {args.precision}\n"
            "osc:\n  enabled: false\n"
            "log:\n  stats_interval: 60\n"
        )
        jackd = subprocess.Popen(
            ["jackd", "-n", name, *(["--no-realtime"] if args.no_realtime else ["-R", "-P", "70"])]
            + ["-d", "dummy", "-r", "48000", "-p", str(args.period)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1.0)
        rvcd = subprocess.Popen(
            [sys.executable, "-m", "rvcd.daemon.cli", "run", "--config", str(d / "soak.yaml")],
            cwd=ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            client = jack.Client("soak-player", servername=name, no_start_server=True)
            port = client.outports.register("out")
            loop = voice_like_signal(48000, 10.0)
            pos = [0]

            def play(frames: int) -> None:
                idx = (pos[0] + np.arange(frames)) % len(loop)
                port.get_array()[:] = loop[idx]
                pos[0] += frames

            client.set_process_callback(play)
            client.activate()
            lines: list[str] = []
            reader = threading.Thread(target=lambda: lines.extend(rvcd.stderr), daemon=True)
            reader.start()
            deadline = time.monotonic() + 300
            while not any("active at" in line for line in lines):
                if time.monotonic() > deadline or rvcd.poll() is not None:
                    raise RuntimeError("rvcd did not come up: " + "".join(lines[-20:]))
                time.sleep(0.5)
            client.connect(port, "rvcd:in_1")
            print(
                f"soaking {args.minutes} min: {args.engine} block {args.block} s, extra {args.extra} s",
                flush=True,
            )
            time.sleep(args.minutes * 60)
            client.deactivate()
            client.close()
        finally:
            rvcd.send_signal(signal.SIGTERM)
            rvcd.wait(timeout=60)
            reader.join(timeout=10)
            jackd.terminate()
            jackd.wait(timeout=10)
    err = "".join(lines)
    for line in err.splitlines():
        if "rvcd:" in line and ("active" in line or "stopped" in line or "load" in line):
            print(line)
    m = re.search(r"stopped: .*xruns (\d+), underruns (\d+)", err)
    if not m:
        print(err[-3000:])
        return 1
    print(f"RESULT xruns {m.group(1)} underruns {m.group(2)} over {args.minutes} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
