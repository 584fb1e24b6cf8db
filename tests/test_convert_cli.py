"""`rvcd make-test-model`, `inspect` and `convert` end to end, as a user runs them."""

from __future__ import annotations

import json
import logging
import os
import stat
import struct
import time

import numpy as np
import pytest
import soundfile as sf
from conftest import noisy_tone

from rvcd.daemon.cli import main
from rvcd.dsp.pitch import make_estimator


@pytest.fixture(scope="module")
def stereo_input(tmp_path_factory):
    """1.5 s of a 200 Hz harmonic tone at 44.1 kHz, stereo."""
    x = noisy_tone(200.0, 1.5, rate=44100)
    path = tmp_path_factory.mktemp("in") / "in.wav"
    sf.write(path, np.stack([x, 0.5 * x], axis=1), 44100)
    return path


def test_make_test_model_writes_every_artifact(tmp_path, capsys):
    assert main(["make-test-model", str(tmp_path / "m"), "--version", "v1", "--sr", "48k"]) == 0
    for name in ("voice.pth", "voice.index", "rmvpe.pt", "hubert/config.json", "hubert/model.safetensors"):
        assert (tmp_path / "m" / name).is_file(), name
    assert main(["inspect", "--json", str(tmp_path / "m" / "voice.pth")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["version"] == "v1" and report["sample_rate"] == 48000 and report["f0"] is True
    assert report["phone_dim"] == 256 and report["n_speakers"] == 4 and report["n_parameters"] > 0


@pytest.mark.parametrize(
    ("version", "rate", "f0", "use_index", "method"),
    [
        ("v2", 40000, True, True, "rmvpe"),
        ("v1", 48000, True, False, "pm"),
        ("v2", 32000, False, True, None),
        ("v1", 40000, False, False, None),
    ],
)
@pytest.mark.parametrize("offline", [False, True], ids=["streamed", "offline"])
def test_convert_produces_audio(
    tiny_models, stereo_input, tmp_path, version, rate, f0, use_index, method, offline
):
    d = tiny_models(version, rate, f0)
    out = tmp_path / "out.wav"
    args = ["convert", str(stereo_input), str(out), "--model", str(d / "voice.pth")]
    if offline:
        args.append("--offline")
    else:
        args += ["--extra", "0.5"]
        rate = 44100
    args += ["--hubert", str(d / "hubert")] + (["--pitch", "5"] if f0 else [])
    if use_index:
        args += ["--index", str(d / "voice.index"), "--index-rate", "0.6"]
    if method:
        args += ["--f0-method", method, "--rmvpe", str(d / "rmvpe.pt")]
    assert main(args) == 0
    audio, sr = sf.read(out)
    assert sr == rate
    assert audio.ndim == 1
    assert abs(len(audio) - 1.5 * rate) <= 1
    assert np.isfinite(audio).all()
    assert np.sqrt(np.mean(audio**2)) > 1e-4, "the converted file is silent"


def test_convert_refuses_to_overwrite_without_force(tiny_models, stereo_input, tmp_path, capsys):
    d = tiny_models("v2", 40000, False)
    out = tmp_path / "out.wav"
    out.write_bytes(b"precious")
    args = [
        "convert",
        str(stereo_input),
        str(out),
        "--model",
        str(d / "voice.pth"),
        "--hubert",
        str(d / "hubert"),
    ]
    assert main(args) == 1
    assert "already exists" in capsys.readouterr().err
    assert out.read_bytes() == b"precious"
    assert main([*args, "--force", "--offline"]) == 0
    assert sf.info(out).samplerate == 40000


def test_convert_speaker_out_of_range_is_refused(tiny_models, stereo_input, tmp_path, capsys):
    d = tiny_models("v2", 40000, False)
    out = tmp_path / "out.wav"
    args = ["convert", str(stereo_input), str(out), "--model", str(d / "voice.pth")]
    assert main([*args, "--hubert", str(d / "hubert"), "--speaker", "9"]) == 1
    assert "speaker 9 outside 0..3" in capsys.readouterr().err
    assert not out.exists()


def test_convert_index_of_wrong_version_is_refused(tiny_models, stereo_input, tmp_path, capsys):
    v1, v2 = tiny_models("v1", 40000, False), tiny_models("v2", 40000, False)
    args = ["convert", str(stereo_input), str(tmp_path / "o.wav"), "--model", str(v2 / "voice.pth")]
    assert main([*args, "--hubert", str(v2 / "hubert"), "--index", str(v1 / "voice.index")]) == 1
    assert "256-d" in capsys.readouterr().err


def test_converted_pitch_follows_the_shift(tiny_models, tmp_path):
    """Even with random weights the NSF source follows f0: +12 semitones doubles it."""
    d = tiny_models("v2", 40000, True)
    src = tmp_path / "in.wav"
    sf.write(src, noisy_tone(150.0, 2.0), 16000)
    pm = make_estimator("pm")
    measured = {}
    for shift in (0, 12):
        out = tmp_path / f"out{shift}.wav"
        args = ["convert", str(src), str(out), "--model", str(d / "voice.pth"), "--hubert", str(d / "hubert")]
        assert (
            main([*args, "--f0-method", "pm", "--pitch", str(shift), "--index-rate", "0", "--extra", "0.5"])
            == 0
        )
        audio, sr = sf.read(out, dtype="float32")
        import soxr

        f0 = pm(soxr.resample(audio, sr, 16000))
        measured[shift] = np.median(f0[f0 > 0])
    assert measured[12] / measured[0] == pytest.approx(2.0, rel=0.05)


def _wav_claiming(path, rate: int, samples: int = 16000):
    """A 16-bit mono WAV whose header claims `rate` Hz."""
    data = (np.sin(np.arange(samples) / 10) * 8000).astype("<i2").tobytes()
    fmt = struct.pack("<IHHIIHH", 16, 1, 1, rate, (2 * rate) % 2**32, 2, 16)
    path.write_bytes(
        b"RIFF"
        + struct.pack("<I", 36 + len(data))
        + b"WAVE"
        + b"fmt "
        + fmt
        + b"data"
        + struct.pack("<I", len(data))
        + data
    )
    return path


@pytest.mark.parametrize("rate", [2_000_000_000, 1, 7])
def test_absurd_input_rates_are_refused_at_once(tmp_path, capsys, rate):
    src = _wav_claiming(tmp_path / "in.wav", rate)
    began = time.monotonic()
    assert main(["convert", str(src), str(tmp_path / "out.wav")]) == 1
    assert f"claims {rate} Hz" in capsys.readouterr().err
    assert time.monotonic() - began < 10
    assert not (tmp_path / "out.wav").exists()


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--block", "0", "0 is outside 0.01..5"),
        ("--block", "1e9", "1e9 is outside 0.01..5"),
        ("--crossfade", "10", "10 is outside 0.01..0.5"),
        ("--gate", "nan", "nan is outside -120..0"),
        ("--pitch", "inf", "inf is outside -24..24"),
        ("--speaker", "1.5", "'1.5' is not a whole number"),
    ],
)
def test_out_of_range_numbers_are_usage_errors(tmp_path, capsys, option, value, message):
    src = _wav_claiming(tmp_path / "in.wav", 16000)
    with pytest.raises(SystemExit) as exit_info:
        main(["convert", str(src), str(tmp_path / "out.wav"), option, value])
    assert exit_info.value.code == 2
    assert f"argument {option}: {message}" in capsys.readouterr().err


def test_a_crossfade_longer_than_the_block_is_refused(tmp_path, capsys):
    src = _wav_claiming(tmp_path / "in.wav", 16000)
    assert main(["convert", str(src), str(tmp_path / "o.wav"), "--block", "0.05", "--crossfade", "0.2"]) == 1
    assert "crossfade (0.2 s) must not be longer than the block (0.05 s)" in capsys.readouterr().err


def test_only_regular_audio_files_are_written(tmp_path, capsys):
    src = _wav_claiming(tmp_path / "in.wav", 16000)
    (tmp_path / "dir.wav").mkdir()
    os.symlink("/dev/null", tmp_path / "null.wav")
    os.mkfifo(tmp_path / "fifo.wav")
    cases = {
        "dir.wav": "is a directory",
        "null.wav": "/dev/null: is not a regular file",
        "fifo.wav": "is not a regular file",
        "out.xyz": "unknown output format '.xyz'",
        "out": "unknown output format '(no suffix)'",
    }
    for name, message in cases.items():
        assert main(["convert", str(src), str(tmp_path / name), "--force"]) == 1, name
        assert message in capsys.readouterr().err, name
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert (tmp_path / "null.wav").is_symlink()


def test_written_files_take_the_umask_or_keep_their_mode(tmp_path):
    src = _wav_claiming(tmp_path / "in.wav", 16000)
    old = os.umask(0o027)
    try:
        assert main(["convert", str(src), str(tmp_path / "new.wav")]) == 0
        existing = tmp_path / "old.wav"
        existing.write_bytes(b"x")
        existing.chmod(0o604)
        assert main(["convert", str(src), str(existing), "--force"]) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new.wav").stat().st_mode) == 0o640
    assert stat.S_IMODE(existing.stat().st_mode) == 0o604
    assert sf.info(existing).samplerate == 16000


def test_command_line_norms(tmp_path, capsys):
    assert main([]) == 0
    assert "usage: rvcd" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.startswith("rvcd ")
    src = _wav_claiming(tmp_path / "in.wav", 16000)
    with pytest.raises(SystemExit) as exit_info:
        main(["convert", str(src), str(tmp_path / "o.wav"), "--pich", "2"])
    assert exit_info.value.code == 2
    assert "--pich: did you mean --pitch?" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["covnert"])
    assert "did you mean convert?" in capsys.readouterr().err
    assert main(["convert", "-v", str(src), str(tmp_path / "o.wav")]) == 0


@pytest.mark.parametrize(
    "options",
    [
        ["--index", "x.index"],
        ["--speaker", "3"],
        ["--f0-method", "rmvpe"],
        ["--precision", "bf16"],
        ["--index-rate", "0.5"],
    ],
)
def test_options_the_world_engine_cannot_use_are_refused(tmp_path, capsys, options):
    src = _wav_claiming(tmp_path / "in.wav", 16000)
    with pytest.raises(SystemExit) as exit_info:
        main(["convert", str(src), str(tmp_path / "o.wav"), *options])
    assert exit_info.value.code == 2
    assert "only the RVC engine uses this" in capsys.readouterr().err
    assert not (tmp_path / "o.wav").exists()


def test_pitch_on_a_no_f0_model_is_refused(tiny_models, tmp_path, capsys):
    d = tiny_models("v2", 32000, False)
    src = _wav_claiming(tmp_path / "in.wav", 16000)
    args = ["convert", str(src), str(tmp_path / "o.wav"), "--model", str(d / "voice.pth")]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--hubert", str(d / "hubert"), "--pitch", "3"])
    assert exit_info.value.code == 2
    assert "takes no pitch (a no-f0 model)" in capsys.readouterr().err


def test_output_keeps_the_input_rate(tmp_path):
    src = tmp_path / "in22.wav"
    sf.write(src, noisy_tone(220.0, 1.0, rate=22050), 22050)
    assert main(["convert", str(src), str(tmp_path / "o.wav"), "--pitch", "3"]) == 0
    info = sf.info(tmp_path / "o.wav")
    assert info.samplerate == 22050 and abs(info.frames - 22050) <= 1


def test_inspect_names_every_kind_of_model_file(tiny_models, capsys):
    d = tiny_models("v2", 40000, True)
    assert main(["inspect", str(d / "voice.pth")]) == 0
    assert "kind:         RVC voice model" in capsys.readouterr().out
    assert main(["inspect", str(d / "rmvpe.pt")]) == 0
    assert "RMVPE pitch model" in capsys.readouterr().out
    assert main(["inspect", "--json", str(d / "hubert")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["kind"].startswith("content encoder")
    assert report["serves v1 models"].startswith("no: this content encoder has 2 layers")


def test_index_build_names_the_problem(tmp_path, capsys):
    wav = _wav_claiming(tmp_path / "speech.wav", 16000)
    assert main(["index", "build", str(wav), str(tmp_path / "x.index")]) == 1
    assert "not a .npy feature array (.wav)" in capsys.readouterr().err
    assert main(["index", "build", str(tmp_path / "missing"), str(tmp_path / "x.index")]) == 1
    assert "missing: no such file or directory" in capsys.readouterr().err


def test_one_set_of_stream_defaults():
    """The command line, the schema and the example configuration agree."""
    import yaml

    from rvcd.daemon.cli import build_parser
    from rvcd.daemon.config import EngineConfig
    from rvcd.daemon.config_paths import packaged

    example = yaml.safe_load(packaged("rvc-example.yaml").read_text())["engine"]
    for command in (["convert", "in.wav", "out.wav"], ["bench"]):
        args = build_parser().parse_args(command)
        for key in ("block", "crossfade", "extra"):
            assert getattr(args, key) == getattr(EngineConfig(), key) == example[key], (command, key)


def test_faiss_advice_goes_through_the_log(tmp_path, capfd, caplog):
    feats = tmp_path / "few.npy"
    np.save(feats, np.random.default_rng(0).random((20, 768), dtype=np.float32))
    with caplog.at_level(logging.WARNING, logger="rvcd.index"):
        assert main(["index", "build", str(feats), str(tmp_path / "few.index")]) == 0
    assert "faiss recommends at least 39" in caplog.text
    assert "please provide at least" not in capfd.readouterr().err, "faiss's own stderr line is silenced"


def test_the_command_line_starts_without_the_inference_stack():
    """`rvcd --help` and the start of `rvcd run` stay quick: torch is imported only by the
    commands that need it (and a SIGHUP during start-up finds its handler in place)."""
    import subprocess
    import sys

    heavy = ("torch", "zeroconf", "scipy.signal")  # scipy.signal alone takes 0.3 s
    code = f"import sys, rvcd.daemon.cli; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
