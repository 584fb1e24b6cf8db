"""End-to-end latency, measured: what rvcd declares to JACK against what a signal takes.

For each engine (WORLD, and RVC with random-weight test models) a private jackd
(dummy backend, unique server name) is started and `rvcd run` runs as its own process;
a player sends a 150 Hz impulse train gated into bursts of irregular lengths into
`rvcd:in_1` and a recorder takes `rvcd:out_1`, both counting JACK cycles from the same
start. The delay is read by cross-correlation (of the samples for bypass, of the 1 ms
energy envelopes for converted audio, whose waveform a vocoder does not keep; the
converted takes use `rms_mix: 0` so the output's loudness follows the input's).
Reported per take: the latency rvcd declares on its output port (JACK capture latency
of `rvcd:out_1`), the measured delay, and their difference in samples and periods.

Usage: .venv/bin/python benchmarks/latency.py [--size tiny|full] [--block 0.25]
       [--extra 0.5] [--headroom 0.1] [--precision auto] [--engines world rvc]
"""

from __future__ import annotations

import argparse
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import jack
import numpy as np
from pythonosc.udp_client import SimpleUDPClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from jack_rig import Rig, delay_of  # noqa: E402  (the tests' player/recorder rig)

from rvcd.daemon.jack_latency import CAPTURE, get_range  # noqa: E402
from rvcd.dsp import test_models  # noqa: E402

RATE = 48000


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def burst_train() -> np.ndarray:
    """1.6 s: a 150 Hz impulse train (unit impulses) gated into five irregular bursts."""
    x = np.zeros(int(1.6 * RATE), dtype=np.float32)
    x[:: RATE // 150] = 0.8
    gate = np.zeros_like(x)
    for start, length in ((0.1, 0.12), (0.35, 0.05), (0.5, 0.3), (0.95, 0.08), (1.15, 0.2)):
        gate[int(start * RATE) : int((start + length) * RATE)] = 1.0
    return x * gate


def envelope(x: np.ndarray) -> np.ndarray:
    env = np.convolve(x.astype(np.float64) ** 2, np.ones(RATE // 1000), mode="same")
    return env - env.mean()


def engine_yaml(kind: str, d: Path, args: argparse.Namespace) -> str:
    if kind == "world":
        return "  kind: world\n"
    test_models.write_voice_model(d / "voice.pth", "v2", 40000, True, args.size)
    test_models.write_content_encoder(d / "hubert", args.size, "v2")
    test_models.write_rmvpe(d / "rmvpe.pt", args.size)
    return (
        f"  kind: rvc\n  model: {d / 'voice.pth'}\n  hubert: {d / 'hubert'}\n  rmvpe: {d / 'rmvpe.pt'}\n"
        f"  precision: {args.precision}\n"
    )


def measure_engine(kind: str, args: argparse.Namespace, d: Path) -> list[str]:
    name = f"rvcd-latency-{kind}-{int(time.time())}"
    osc_port = free_udp_port()
    (d / f"{kind}.yaml").write_text(
        f"jack:\n  server_name: {name}\nengine:\n{engine_yaml(kind, d, args)}"
        f"  block: {args.block}\n  extra: {args.extra}\n  crossfade: {args.crossfade}\n"
        f"  headroom: {args.headroom}\n  rms_mix: 0\n"
        f"osc:\n  port: {osc_port}\nlog:\n  stats_interval: 0\n"
    )
    jackd = subprocess.Popen(
        ["jackd", "-n", name, "--no-realtime", "-d", "dummy", "-r", str(RATE), "-p", str(args.period)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)
    rvcd = subprocess.Popen(
        [sys.executable, "-m", "rvcd.daemon.cli", "run", "--config", str(d / f"{kind}.yaml")],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(rvcd.stderr), daemon=True)
    reader.start()
    results = []
    rig = None
    try:
        deadline = time.monotonic() + 300
        while not any("active at" in line for line in lines):
            if time.monotonic() > deadline or rvcd.poll() is not None:
                raise RuntimeError("rvcd did not come up: " + "".join(lines[-20:]))
            time.sleep(0.2)
        rig = Rig(name)
        probe = jack.Client("latency-probe", servername=name, no_start_server=True)
        declared = get_range(probe.get_port_by_name("rvcd:out_1"), CAPTURE)
        probe.close()
        osc = SimpleUDPClient("127.0.0.1", osc_port)
        x = burst_train()
        for bypass in (True, False):
            osc.send_message("/rvcd/bypass", int(bypass))
            time.sleep(0.5)
            rig.play(x, 0.5)  # one take to settle the stream after the switch
            y = rig.play(x, args.block + args.headroom + 1.0)
            if bypass:
                measured = delay_of(x, y, 2 * declared[1])
            else:
                measured = delay_of(envelope(x), envelope(y), 2 * declared[1])
            diff = measured - declared[0]
            results.append(
                f"{kind:<5} {'bypass ' if bypass else 'convert'}  declared {declared[0]:6d} samples "
                f"({1000 * declared[0] / RATE:6.1f} ms)  measured {measured:6d} samples "
                f"({1000 * measured / RATE:6.1f} ms)  difference {diff:+5d} samples "
                f"({diff / args.period:+.2f} periods)"
            )
            print(results[-1], flush=True)
    finally:
        if rig is not None:
            rig.close()
        rvcd.send_signal(signal.SIGTERM)
        rvcd.wait(timeout=60)
        reader.join(timeout=10)
        jackd.terminate()
        jackd.wait(timeout=10)
    for line in lines:
        if "latency" in line and "active" in line:
            print("  rvcd log:", line.strip())
    return results


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--engines", nargs="+", choices=["world", "rvc"], default=["world", "rvc"])
    parser.add_argument("--size", choices=["tiny", "full"], default="tiny", help="RVC test model size")
    parser.add_argument("--block", type=float, default=0.25)
    parser.add_argument("--extra", type=float, default=0.5)
    parser.add_argument("--crossfade", type=float, default=0.05)
    parser.add_argument("--headroom", type=float, default=0.1)
    parser.add_argument("--period", type=int, default=256)
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.engines:
            measure_engine(kind, args, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
