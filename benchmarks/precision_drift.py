"""Drift of the faster precisions against fp32, measured on the streamed output.

The same input goes through the block streamer (block 0.25 s, crossfade 0.05 s, extra
0.5 s, 48 kHz, rmvpe) once per precision with the same seed, for the full-size
random-weight v2 40 kHz test model and every voice model of the golden directory
(with its content encoder and rmvpe). Inputs: the benchmark's voice-like signal and a
real speech recording made with espeak-ng. Reported per model, input and pitch
estimator (`rvcd.dsp.drift`): f0 difference (median and 95th percentile, cents),
log-mel spectral distance (dB) and the peak-normalised max abs difference. Streaming
with rmvpe puts all three networks in the precision; streaming with harvest (the same
in every precision) isolates the content encoder and the synthesizer; "rmvpe alone"
compares rmvpe's f0 on the input. With random weights rmvpe's salience is nearly flat,
so its peak, and the f0 everything downstream follows, can jump on a rounding change:
read the rmvpe rows as an upper bound.
Targets for bf16: median f0 difference <= 5 cents, log-mel distance <= 1.0 dB.

Usage: .venv/bin/python benchmarks/precision_drift.py [--precision bf16] [--threads 2]
       [--golden DIR] [--no-full]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from rvcd.daemon.engines import EngineSpec, build_engine
from rvcd.dsp import test_models
from rvcd.dsp.audio_io import resample
from rvcd.dsp.benchmark import voice_like_signal
from rvcd.dsp.drift import measure
from rvcd.dsp.pitch import SAMPLE_RATE
from rvcd.dsp.precision import describe, torch_dtype
from rvcd.dsp.rmvpe import Rmvpe
from rvcd.dsp.stream_params import StreamParams
from rvcd.dsp.streamer import Streamer, StreamShape

RATE = 48000
SEED = 1234
SPEECH = "The quick brown fox jumps over the lazy dog, and then it sings a little song."


def speech(tmp: Path) -> np.ndarray | None:
    """A sentence spoken by espeak-ng at RATE, or None without espeak-ng."""
    if shutil.which("espeak-ng") is None:
        print("espeak-ng not found: the speech input is skipped", file=sys.stderr)
        return None
    wav = tmp / "speech.wav"
    subprocess.run(["espeak-ng", "-w", str(wav), SPEECH], check=True)
    data, rate = sf.read(wav, dtype="float32")
    x = resample(data, rate, RATE)
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


def render(spec: EngineSpec, audio: np.ndarray, params: StreamParams) -> np.ndarray:
    """Stream `audio` through the engine `spec` describes, seeded."""
    shape = StreamShape.from_seconds(RATE, 0.25, 0.05, 0.5)
    engine = build_engine(spec)
    torch.manual_seed(SEED)
    return Streamer(engine, shape).run(audio, params)


def rmvpe_cents(path: Path, audio: np.ndarray, precision: str) -> np.ndarray:
    """|cents| between rmvpe's f0 in fp32 and in `precision` on the 16 kHz input, over
    frames both call voiced."""
    x = resample(audio, RATE, SAMPLE_RATE)
    fa = Rmvpe(path, dtype=torch.float32)(x)
    fb = Rmvpe(path, dtype=torch_dtype(precision))(x)
    both = (fa > 0) & (fb > 0)
    return np.abs(1200 * np.log2(fb[both] / fa[both])) if both.any() else np.zeros(1)


def models(tmp: Path, golden: Path | None, full: bool) -> list[tuple[str, dict[str, Path]]]:
    """(label, engine files) per model. The golden voice models take 256/768-d features,
    wider than the golden content encoder's, so they run with the full-size random-weight
    HuBERT base (it serves v1 and v2) and the golden rmvpe."""
    print("writing the full-size random-weight test models ...", file=sys.stderr, flush=True)
    hubert = test_models.write_content_encoder(tmp / "hubert", "full", "v2")
    found = []
    if full:
        found.append(
            (
                "full v2 40k (random weights)",
                {
                    "model": test_models.write_voice_model(tmp / "voice.pth", "v2", 40000, True, "full"),
                    "hubert": hubert,
                    "rmvpe": test_models.write_rmvpe(tmp / "rmvpe.pt", "full"),
                },
            )
        )
    if golden is not None and (golden / "manifest.json").is_file():
        manifest = json.loads((golden / "manifest.json").read_text())
        rmvpe = next(golden / k for k, v in manifest.items() if "architecture" in v)
        for name, entry in manifest.items():
            if "version" in entry:
                found.append((f"golden {name}", {"model": golden / name, "hubert": hubert, "rmvpe": rmvpe}))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--precision", default="bf16", help="precision to compare with fp32 (default bf16)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads")
    parser.add_argument(
        "--golden", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "golden"
    )
    parser.add_argument(
        "--f0-methods",
        nargs="+",
        default=["rmvpe", "harvest"],
        help="pitch estimators to stream with (default rmvpe, and harvest, which is the same in "
        "every precision and so isolates the content encoder and synthesizer)",
    )
    parser.add_argument("--no-full", action="store_true", help="skip the full-size test model")
    parser.add_argument(
        "--seconds", type=float, default=4.0, help="length of the voice-like input (default 4)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(describe(args.precision, "cpu"))
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        inputs = {"voice-like": voice_like_signal(RATE, args.seconds, seed=3)}
        spoken = speech(tmp)
        if spoken is not None:
            inputs["espeak-ng speech"] = spoken
        for label, files in models(tmp, args.golden, not args.no_full):
            for input_name, audio in inputs.items():
                for method in args.f0_methods:
                    params = StreamParams(f0_method=method)
                    base = EngineSpec(kind="rvc", precision="fp32", **files)
                    reference = render(base, audio, params)
                    other = render(EngineSpec(kind="rvc", precision=args.precision, **files), audio, params)
                    drift = measure(reference, other, RATE)
                    print(f"{label:<30} {input_name:<16} f0 {method:<7} {drift.line()}", flush=True)
                cents = rmvpe_cents(files["rmvpe"], audio, args.precision)
                print(
                    f"{label:<30} {input_name:<16} rmvpe alone: f0 median {np.median(cents):.2f} cents, "
                    f"p95 {np.percentile(cents, 95):.2f} cents ({len(cents)} frames voiced in both)",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
