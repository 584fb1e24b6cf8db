"""Untrusted model files: hostile pickles run no code, broken files get clear errors."""

from __future__ import annotations

import pickle
import zipfile

import pytest
import torch

from rvcd.daemon.cli import main
from rvcd.dsp.content_loader import load_content_encoder
from rvcd.dsp.input_limits import DEFAULT_MAX_MODEL_MB
from rvcd.dsp.rmvpe import load_rmvpe_net
from rvcd.dsp.safe_load import ModelFileError, set_size_limit
from rvcd.dsp.voice_model import load_voice_model


class _Exploit:
    """Pickles to a call of os.system that would create the marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def _hostile_checkpoint(path, marker):
    """A real torch zip checkpoint whose pickle calls os.system when unpickled."""
    torch.save({"weight": {"x": torch.zeros(1)}, "config": [], "exploit": _Exploit(marker)}, path)
    return path


def _hostile_raw_pickle(path, marker):
    path.write_bytes(pickle.dumps({"model": _Exploit(marker)}, protocol=2))
    return path


@pytest.mark.parametrize("writer", [_hostile_checkpoint, _hostile_raw_pickle])
@pytest.mark.parametrize(
    "loader", [load_voice_model, load_rmvpe_net, load_content_encoder], ids=["voice", "rmvpe", "hubert"]
)
def test_hostile_pickle_is_refused_and_runs_nothing(tmp_path, writer, loader):
    marker = tmp_path / "pwned"
    path = writer(tmp_path / "evil.pth", marker)
    with pytest.raises(ModelFileError, match="refused") as info:
        loader(path)
    assert str(path) in str(info.value)
    assert not marker.exists()


def test_hostile_hf_directory_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    d = tmp_path / "hubert"
    d.mkdir()
    (d / "config.json").write_text("{}")
    _hostile_checkpoint(d / "pytorch_model.bin", marker)
    with pytest.raises(ModelFileError, match="refused"):
        load_content_encoder(d)
    assert not marker.exists()


def test_inspect_refuses_hostile_file_with_one_line(tmp_path, capsys):
    marker = tmp_path / "pwned"
    path = _hostile_checkpoint(tmp_path / "evil.pth", marker)
    assert main(["inspect", str(path)]) == 1
    err = capsys.readouterr().err
    assert "refused" in err and str(path) in err
    assert not marker.exists()


def test_truncated_model_is_a_clear_error(golden, tmp_path):
    src = golden / "voice-v2-40k-f0.pth" if (golden / "voice-v2-40k-f0.pth").exists() else None
    if src is None:
        src = next(golden.glob("*.pth"))
    data = src.read_bytes()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="truncated"):
        load_voice_model(cut)


def test_non_model_file_is_a_clear_error(tmp_path):
    path = tmp_path / "song.pth"
    path.write_bytes(b"RIFF....WAVEfmt " + bytes(100))
    with pytest.raises(ModelFileError, match="not a PyTorch checkpoint"):
        load_voice_model(path)


def test_missing_key_is_named(tiny_models, tmp_path):
    ckpt = torch.load(tiny_models() / "voice.pth", weights_only=True)
    del ckpt["config"]
    torch.save(ckpt, tmp_path / "noconfig.pth")
    with pytest.raises(ModelFileError, match="missing key 'config'"):
        load_voice_model(tmp_path / "noconfig.pth")


def test_missing_weight_is_named(tiny_models, tmp_path):
    ckpt = torch.load(tiny_models() / "voice.pth", weights_only=True)
    del ckpt["weight"]["dec.conv_post.weight"]
    torch.save(ckpt, tmp_path / "noweight.pth")
    with pytest.raises(ModelFileError, match="dec.conv_post.weight"):
        load_voice_model(tmp_path / "noweight.pth")


def test_version_contradicting_weights_is_refused(tiny_models, tmp_path):
    ckpt = torch.load(tiny_models("v2") / "voice.pth", weights_only=True)
    ckpt["version"] = "v1"
    torch.save(ckpt, tmp_path / "wrongversion.pth")
    with pytest.raises(ModelFileError, match="'version' is v1"):
        load_voice_model(tmp_path / "wrongversion.pth")


def test_training_checkpoint_is_explained(tmp_path):
    torch.save({"model": {"w": torch.zeros(1)}, "iteration": 3}, tmp_path / "G_100.pth")
    with pytest.raises(ModelFileError, match="training checkpoint"):
        load_voice_model(tmp_path / "G_100.pth")


def test_zip_that_is_not_a_checkpoint_is_refused(tmp_path):
    path = tmp_path / "archive.pth"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(ModelFileError, match=str(path)):
        load_voice_model(path)


def test_files_over_the_size_limit_are_not_read(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"PK" + b"\0" * (3 * 2**20))
    set_size_limit(2)
    try:
        with pytest.raises(ModelFileError, match=r"3 MiB is over the 2 MiB limit.*engine\.max_model_mb"):
            load_voice_model(junk)
    finally:
        set_size_limit(DEFAULT_MAX_MODEL_MB)
    with pytest.raises(ModelFileError) as within_limit:
        load_voice_model(junk)
    assert "MiB limit" not in str(within_limit.value), "read (and refused) under the default limit"
