"""Precision: what `auto` picks, what is refused, and bf16 output within the drift bounds."""

from __future__ import annotations

import re

import numpy as np
import pytest
import soundfile as sf
import torch
from test_streamer import RATE

from rvcd.daemon.cli import main
from rvcd.daemon.config import ConfigError, parse_config
from rvcd.daemon.engines import EngineSpec, build_engine
from rvcd.dsp.audio_io import resample
from rvcd.dsp.benchmark import voice_like_signal
from rvcd.dsp.drift import measure
from rvcd.dsp.pitch import SAMPLE_RATE
from rvcd.dsp.precision import cpu_info, resolve
from rvcd.dsp.rmvpe import Rmvpe
from rvcd.dsp.stream_params import StreamParams
from rvcd.dsp.streamer import Streamer, StreamShape

F0_MEDIAN_CENTS = 5.0
"""The issue's bound on the median f0 difference of bf16 against fp32."""
LOG_MEL_DB = 1.0
"""The issue's bound on the log-mel spectral distance of bf16 against fp32."""


def _cpuinfo(tmp_path, name: str, flags: str):
    path = tmp_path / name
    path.write_text(f"processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: fpu sse2 {flags}\n")
    return cpu_info(path)


def test_cpu_flags_decide_native_bf16(tmp_path):
    amx = _cpuinfo(tmp_path, "amx", "avx2 avx512f amx_bf16 amx_tile")
    assert amx.native_bf16 and amx.model == "Test CPU" and "amx_bf16" in amx.describe()
    assert _cpuinfo(tmp_path, "epyc", "avx2 avx512f avx512_bf16").native_bf16
    assert not _cpuinfo(tmp_path, "avx2", "avx2 fma").native_bf16


def test_auto_follows_this_cpu():
    assert resolve("auto", "cpu") == ("bf16" if cpu_info().native_bf16 else "fp32")
    assert resolve("fp32", "cpu") == "fp32"
    assert resolve("bf16", "cpu") == "bf16"


def test_fp16_on_the_cpu_and_unknown_names_are_refused():
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        resolve("fp16", "cpu")
    with pytest.raises(ValueError, match="unknown precision 'half'"):
        resolve("half", "cpu")


def test_config_names_the_precision_key(tmp_path):
    assert parse_config({"engine": {"precision": "bf16"}}, tmp_path).engine.precision == "bf16"
    with pytest.raises(ConfigError, match=r"engine.precision: precision fp16 needs a CUDA device"):
        parse_config({"engine": {"precision": "fp16"}}, tmp_path)
    with pytest.raises(ConfigError, match=r"engine.precision: 'bfloat' is not one of auto, fp32, bf16"):
        parse_config({"engine": {"precision": "bfloat"}}, tmp_path)
    with pytest.raises(ConfigError, match=r"engine.dtype: renamed to engine.precision"):
        parse_config({"engine": {"dtype": "float32"}}, tmp_path)


def _render(d, precision: str, audio: np.ndarray) -> tuple[np.ndarray, torch.dtype]:
    spec = EngineSpec(
        kind="rvc", model=d / "voice.pth", hubert=d / "hubert", rmvpe=d / "rmvpe.pt", precision=precision
    )
    engine = build_engine(spec)
    torch.manual_seed(7)
    # harvest: the same f0 in every precision, so the content encoder and synthesizer
    # are what is compared (rmvpe is compared on its own below).
    params = StreamParams(f0_method="harvest")
    out = Streamer(engine, StreamShape.from_seconds(RATE, 0.2, 0.04, 0.5)).run(audio, params)
    return out, engine.dtype


@pytest.mark.parametrize(
    ("version", "rate", "f0"), [("v2", 40000, True), ("v1", 48000, True), ("v2", 32000, False)]
)
def test_bf16_stays_within_the_drift_bounds(tiny_models, version, rate, f0):
    d = tiny_models(version, rate, f0)
    audio = voice_like_signal(RATE, 3.0, seed=5)
    reference, ref_dtype = _render(d, "fp32", audio)
    fast, fast_dtype = _render(d, "bf16", audio)
    assert (ref_dtype, fast_dtype) == (torch.float32, torch.bfloat16)
    drift = measure(reference, fast, RATE)
    assert drift.max_abs > 0, "bf16 gave bit-identical output: the bf16 path did not run"
    assert drift.logmel_db <= LOG_MEL_DB, drift.line()
    if f0:
        assert drift.voiced_frames > 100, drift.line()
        assert drift.f0_median_cents <= F0_MEDIAN_CENTS, drift.line()


def test_rmvpe_f0_in_bf16_stays_within_the_bound(tiny_models):
    rmvpe = tiny_models("v2", 40000, True) / "rmvpe.pt"
    audio = resample(voice_like_signal(RATE, 3.0, seed=5), RATE, SAMPLE_RATE)
    fa = Rmvpe(rmvpe, dtype=torch.float32)(audio)
    fb = Rmvpe(rmvpe, dtype=torch.bfloat16)(audio)
    both = (fa > 0) & (fb > 0)
    assert both.sum() > 100
    cents = np.abs(1200 * np.log2(fb[both] / fa[both]))
    assert np.median(cents) <= F0_MEDIAN_CENTS


def test_drift_measure_notices_a_pitch_change():
    """The bounds are sharp enough: a 10-cent shift and a 3 dB tilt are both caught."""
    t = np.arange(2 * RATE) / RATE
    a = sum(0.2 / k * np.sin(2 * np.pi * k * 150 * t) for k in range(1, 6))
    b = sum(0.2 / k * np.sin(2 * np.pi * k * 150 * 2 ** (10 / 1200) * t) for k in range(1, 6))
    shifted = measure(a, b, RATE)
    assert 9 < shifted.f0_median_cents < 11
    c = sum(0.2 / k * 10 ** (-3 * (k > 2) / 20) * np.sin(2 * np.pi * k * 150 * t) for k in range(1, 6))
    assert measure(a, c, RATE).logmel_db > LOG_MEL_DB


def test_bench_names_the_cpu_and_the_precision(tiny_models, capsys):
    d = tiny_models("v2", 40000, True)
    args = ["bench", "--engine", "rvc", "--model", str(d / "voice.pth"), "--hubert", str(d / "hubert")]
    args += ["--rmvpe", str(d / "rmvpe.pt"), "--blocks", "2", "--extra", "0.3", "--precision", "bf16"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"precision bf16 (asked bf16) on {cpu_info().model}" in out
    assert re.search(r"^rvc .* RTF \d+\.\d\d", out, re.MULTILINE)


def test_convert_refuses_fp16_on_the_cpu(tiny_models, tmp_path, capsys):
    d = tiny_models("v2", 40000, True)
    src = tmp_path / "in.wav"
    sf.write(src, voice_like_signal(RATE, 0.5), RATE)
    args = ["convert", str(src), str(tmp_path / "out.wav"), "--model", str(d / "voice.pth")]
    args += ["--hubert", str(d / "hubert"), "--precision", "fp16"]
    assert main(args) == 1
    assert "precision fp16 needs a CUDA device" in capsys.readouterr().err
    assert not (tmp_path / "out.wav").exists()
