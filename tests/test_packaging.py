"""rvcd installed from a wheel, away from any checkout: it finds its configuration and runs."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from jack_rig import JackServer, port_appears

ROOT = Path(__file__).resolve().parent.parent


def test_a_wheel_installs_and_runs_without_a_checkout(tmp_path):
    # Built from a copy: an in-tree build would leave build/ and egg-info in the checkout.
    source = tmp_path / "source"
    shutil.copytree(
        ROOT, source, ignore=shutil.ignore_patterns(".venv", ".git", "build", "*.egg-info", "__pycache__")
    )
    dist = tmp_path / "dist"
    build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    subprocess.run([*build, "-w", str(dist), str(source)], check=True, timeout=600, cwd=tmp_path)
    wheel = next(dist.glob("rvcd-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    # The dependencies (torch & co.) come from the test environment; rvcd itself only from the wheel.
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)],
        check=True,
        timeout=300,
    )
    rvcd = venv / "bin" / "rvcd"
    env = {k: v for k, v in os.environ.items() if k not in ("RVCD_CONFIG", "PYTHONPATH")}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")
    where = subprocess.run(
        [python, "-c", "import rvcd; print(rvcd.__file__)"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    ).stdout
    assert str(site) in where, f"rvcd imported from {where}, not from the wheel"

    version = subprocess.run([rvcd, "--version"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert version.stdout.startswith("rvcd ")
    init = subprocess.run(
        [rvcd, "config", "init", str(tmp_path / "mine.yaml")], capture_output=True, text=True, env=env
    )
    assert init.returncode == 0, init.stderr
    assert "kind: world" in (tmp_path / "mine.yaml").read_text()
    init = subprocess.run(
        [rvcd, "config", "init", "--streaming", str(tmp_path / "streaming.yaml")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert init.returncode == 0, init.stderr

    server = JackServer()
    proc = subprocess.Popen(
        [rvcd, "run", "--server", server.name, "--port", "0", "--client-name", "wheel"],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        up = port_appears(server.name, "wheel:out_1", timeout=60)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        server.stop()
    assert up, err
    assert proc.returncode == 0, err
    assert f"{site}/rvcd/configs/default.yaml (the packaged default)" in err


def test_the_configuration_search_order(tmp_path, monkeypatch):
    from rvcd.daemon.config_paths import find_config, packaged

    monkeypatch.delenv("RVCD_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert find_config(None) == (packaged(), "the packaged default")
    user = tmp_path / "xdg" / "rvcd" / "config.yaml"
    user.parent.mkdir(parents=True)
    user.write_text("engine:\n  pitch: 2\n")
    assert find_config(None) == (user, "the user configuration")
    monkeypatch.setenv("RVCD_CONFIG", str(tmp_path / "env.yaml"))
    assert find_config(None) == (tmp_path / "env.yaml", "$RVCD_CONFIG")
    assert find_config(tmp_path / "x.yaml") == (tmp_path / "x.yaml", "--config")


def test_config_init_streaming_writes_the_virtual_microphone_set_up(tmp_path):
    from rvcd.daemon.cli import main
    from rvcd.daemon.config import load_config

    assert main(["config", "init", "--streaming", str(tmp_path / "s.yaml")]) == 0
    cfg = load_config(tmp_path / "s.yaml")
    assert cfg.virtual_mic.enabled and cfg.virtual_mic.description == "rvcd voice"
    assert cfg.engine.limiter and cfg.jack.monitor
    with pytest.raises(SystemExit) as refused:
        main(["config", "init", "--streaming", "--rvc", str(tmp_path / "t.yaml")])
    assert refused.value.code == 2 and not (tmp_path / "t.yaml").exists()


def test_the_rvc_example_shows_every_key():
    """configs/rvc-example.yaml claims to show every key: the schema and it agree."""
    from dataclasses import fields

    import yaml

    from rvcd.daemon.config import _SECTIONS, _TOP_LEVEL_PATHS
    from rvcd.daemon.config_paths import packaged

    example = yaml.safe_load(packaged("rvc-example.yaml").read_text())
    for section, cls in _SECTIONS.items():
        assert sorted(example[section]) == sorted(f.name for f in fields(cls)), section
    assert {"models_dir"} <= set(example) <= set(_SECTIONS) | set(_TOP_LEVEL_PATHS)
