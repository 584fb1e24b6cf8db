"""`rvcd tune`: measures the configured model, picks a block that keeps up, writes a
configuration that loads and runs from anywhere."""

from __future__ import annotations

import re

import pytest

from rvcd.daemon import tune
from rvcd.daemon.cli import main
from rvcd.daemon.config import load_config


@pytest.fixture()
def rvc_config(tiny_models, tmp_path):
    d = tiny_models("v2", 40000, True)
    conf = tmp_path / "conf"
    conf.mkdir()
    for name in ("voice.pth", "rmvpe.pt", "hubert"):
        (conf / name).symlink_to(d / name)
    path = conf / "voice.yaml"
    path.write_text(
        "engine:\n  kind: rvc\n  model: voice.pth\n  hubert: hubert\n  rmvpe: rmvpe.pt\n"
        "  f0_method: rmvpe\n  extra: 0.3\n  crossfade: 0.04\n  precision: fp32\n"
        "osc:\n  enabled: false\n"
    )
    return path


def test_tune_picks_a_fitting_block_and_writes_a_working_config(rvc_config, tmp_path, capsys):
    out = tmp_path / "elsewhere" / "tuned.yaml"
    out.parent.mkdir()
    assert main(["tune", "--config", str(rvc_config), "--write", str(out), "--blocks", "4"]) == 0
    text = capsys.readouterr().out
    assert "precision fp32" in text and "<- chosen" in text
    rows = [line for line in text.splitlines() if re.match(r"fp32 +\d", line)]
    assert len(rows) == len(tune.CANDIDATE_BLOCKS)
    chosen = next(line for line in text.splitlines() if "<- chosen" in line).split()
    block, p99, headroom, latency_ms = float(chosen[1]), float(chosen[3]), float(chosen[5]), float(chosen[6])
    assert p99 / 1000 * (1 + tune.DEFAULT_MARGIN) <= headroom <= block
    cfg = load_config(out)
    assert cfg.engine.block == block
    assert cfg.engine.headroom == pytest.approx(headroom)
    assert cfg.engine.precision == "fp32"
    assert cfg.engine.model == (rvc_config.parent / "voice.pth").resolve()
    expected = tune.end_to_end(cfg, block, cfg.engine.crossfade, headroom, 48000, 256)
    assert latency_ms == pytest.approx(1000 * expected, abs=0.5)


def test_tune_never_overwrites_without_force(rvc_config, tmp_path, capsys):
    out = tmp_path / "tuned.yaml"
    out.write_text("mine\n")
    assert main(["tune", "--config", str(rvc_config), "--write", str(out)]) == 1
    assert "already exists" in capsys.readouterr().err
    assert out.read_text() == "mine\n"


def test_a_slow_machine_gets_a_clear_answer():
    rows = [tune.TuneRow("fp32", 0.1, 0.05, 150.0, 180.0, 0.225, 0.4, False)]
    assert tune.choose(rows) is None


def test_choice_prefers_the_lowest_latency():
    slow = tune.TuneRow("fp32", 0.25, 0.05, 150.0, 180.0, 0.225, 0.54, True)
    fast = tune.TuneRow("bf16", 0.1, 0.05, 50.0, 60.0, 0.075, 0.25, True)
    misfit = tune.TuneRow("bf16", 0.05, 0.05, 45.0, 55.0, 0.07, 0.15, False)
    assert tune.choose([slow, fast, misfit]) is fast
