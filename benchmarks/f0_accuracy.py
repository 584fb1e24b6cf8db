"""Pitch-estimator accuracy and speed on material with known ground-truth f0.

Material (all generated here, nothing downloaded):
- speech: espeak-ng sentences analysed with WORLD and resynthesised on a known f0
  contour (a glide with vibrato) wherever WORLD found voicing;
- tones: harmonic tones with vibrato;
- noisy: the speech and tones with white noise at 20, 10 and 0 dB SNR;
- silence: digital silence and -60 dBFS noise (everything should be unvoiced).

Metrics per estimator: raw pitch accuracy (RPA, voiced reference frames estimated
voiced within 50 cents), voicing decision error (VDE, frames whose voiced/unvoiced
call differs), gross error rate (GER, voiced-in-both frames off by more than 20 %),
and milliseconds of processing per second of audio with `--threads` torch threads.

Usage: .venv/bin/python benchmarks/f0_accuracy.py [--rmvpe rmvpe.pt] [--threads 2]
Without a real rmvpe.pt, rmvpe runs with random test weights: its speed is real, its
accuracy is meaningless and is not printed.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyworld
import soundfile as sf
import torch

from rvcd.dsp.audio_io import resample
from rvcd.dsp.pitch import HOP, SAMPLE_RATE, make_estimator, methods
from rvcd.dsp.test_models import write_rmvpe

warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
SENTENCES = [
    "The quick brown fox jumps over the lazy dog while the band plays on.",
    "Real time voice conversion needs a pitch estimator that never gives up.",
    "She sells sea shells by the sea shore, and the shells she sells are surely sea shells.",
]


@dataclass
class Clip:
    name: str
    audio: np.ndarray
    truth: np.ndarray
    """Reference f0 per 10 ms frame, Hz, 0 = unvoiced."""


def contour(n: int, lo: float, hi: float, vibrato_hz: float = 5.0, depth: float = 0.03) -> np.ndarray:
    t = np.arange(n) * HOP / SAMPLE_RATE
    glide = lo * (hi / lo) ** (0.5 - 0.5 * np.cos(2 * np.pi * t / max(t[-1], 1e-3)))
    return glide * (1 + depth * np.sin(2 * np.pi * vibrato_hz * t))


def speech_clips(tmp: Path) -> list[Clip]:
    if shutil.which("espeak-ng") is None:
        print("espeak-ng not found: speech material skipped", file=sys.stderr)
        return []
    clips = []
    for i, text in enumerate(SENTENCES):
        wav = tmp / f"s{i}.wav"
        subprocess.run(["espeak-ng", "-w", str(wav), text], check=True)
        data, rate = sf.read(wav, dtype="float64")
        x = resample(data.astype(np.float32), rate, SAMPLE_RATE).astype(np.float64)
        f0, t = pyworld.harvest(x, SAMPLE_RATE, frame_period=10.0)
        sp = pyworld.cheaptrick(x, f0, t, SAMPLE_RATE)
        ap = pyworld.d4c(x, f0, t, SAMPLE_RATE)
        target = np.where(f0 > 0, contour(len(f0), 110 + 40 * i, 190 + 60 * i), 0.0)
        y = pyworld.synthesize(target, sp, ap, SAMPLE_RATE, frame_period=10.0)
        y = (0.5 * y / max(np.abs(y).max(), 1e-9)).astype(np.float32)
        clips.append(Clip(f"speech{i}", y, target[: len(y) // HOP + 1]))
    return clips


def tone_clips() -> list[Clip]:
    clips = []
    for lo, hi in ((90.0, 140.0), (180.0, 300.0), (350.0, 600.0)):
        n = 300
        f0 = contour(n, lo, hi)
        up = np.repeat(f0, HOP)
        phase = 2 * np.pi * np.cumsum(up) / SAMPLE_RATE
        x = sum(0.3 / k * np.sin(k * phase) for k in range(1, 6)).astype(np.float32)
        clips.append(Clip(f"tone{int(lo)}", x, f0[: len(x) // HOP + 1]))
    return clips


def with_noise(clips: list[Clip], snrs: tuple[float, ...] = (20.0, 10.0, 0.0)) -> list[Clip]:
    rng = np.random.default_rng(0)
    out = []
    for clip in clips:
        power = np.mean(clip.audio**2)
        for snr in snrs:
            noise = rng.standard_normal(len(clip.audio)) * np.sqrt(power / 10 ** (snr / 10))
            out.append(Clip(f"{clip.name}@{int(snr)}dB", (clip.audio + noise).astype(np.float32), clip.truth))
    return out


def silence_clips() -> list[Clip]:
    n = SAMPLE_RATE * 2
    rng = np.random.default_rng(1)
    quiet = (rng.standard_normal(n) * 10 ** (-60 / 20)).astype(np.float32)
    return [
        Clip("silence", np.zeros(n, dtype=np.float32), np.zeros(n // HOP + 1)),
        Clip("noise-60dB", quiet, np.zeros(n // HOP + 1)),
    ]


@dataclass
class Score:
    rpa: float
    vde: float
    ger: float
    ms_per_s: float


def score(est, clips: list[Clip]) -> Score:
    hits = voiced_ref = vde = frames = gross = both = 0
    seconds = elapsed = 0.0
    for clip in clips:
        start = time.perf_counter()
        f0 = est(clip.audio)
        elapsed += time.perf_counter() - start
        seconds += len(clip.audio) / SAMPLE_RATE
        n = min(len(f0), len(clip.truth))
        ref, got = clip.truth[:n], f0[:n]
        rv, gv = ref > 0, got > 0
        frames += n
        vde += int(np.sum(rv != gv))
        voiced_ref += int(rv.sum())
        ok = rv & gv
        cents = np.zeros(n)
        cents[ok] = 1200 * np.abs(np.log2(got[ok] / ref[ok]))
        hits += int(np.sum(ok & (cents <= 50)))
        both += int(ok.sum())
        gross += int(np.sum(ok & (np.abs(got - ref) > 0.2 * np.maximum(ref, 1e-9))))
    return Score(
        rpa=hits / max(voiced_ref, 1),
        vde=vde / max(frames, 1),
        ger=gross / max(both, 1),
        ms_per_s=1000 * elapsed / max(seconds, 1e-9),
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rmvpe", help="a real rmvpe.pt (default: random test weights, speed only)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--methods", nargs="*", default=None, help="estimators to run (default all)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        rmvpe_path = args.rmvpe or write_rmvpe(tmp / "rmvpe.pt", size="full")
        clean = speech_clips(tmp) + tone_clips()
        sets = {"clean": clean, "noisy": with_noise(clean), "silence": silence_clips()}
        total = sum(len(c.audio) for c in clean) / SAMPLE_RATE
        print(
            f"material: {len(clean)} clean clips ({total:.1f} s), x3 noisy, 2 silent; threads={args.threads}"
        )
        header = f"{'method':<11} {'set':<8} {'RPA %':>6} {'VDE %':>6} {'GER %':>6} {'ms/s':>7}"
        print(header)
        print("-" * len(header))
        for method in args.methods or methods():
            est = make_estimator(method, rmvpe_path=rmvpe_path)
            meaningless = method == "rmvpe" and args.rmvpe is None
            for set_name, clips in sets.items():
                s = score(est, clips)
                if meaningless:
                    print(f"{method:<11} {set_name:<8} {'n/a':>6} {'n/a':>6} {'n/a':>6} {s.ms_per_s:7.1f}")
                else:
                    print(
                        f"{method:<11} {set_name:<8} {100 * s.rpa:6.1f} {100 * s.vde:6.1f} "
                        f"{100 * s.ger:6.1f} {s.ms_per_s:7.1f}"
                    )
        if args.rmvpe is None:
            print("rmvpe: random test weights; accuracy not meaningful (pass --rmvpe with a real file)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
