"""The channels-last rewrite computes what the plain layers compute (fp32, round-off),
for every layer kind it replaces and for the input shapes a stream uses."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rvcd.dsp.conv_layout import PackedConv1d, PackedConv2d, PackedLinear, prepare, use_channels_last
from rvcd.dsp.rmvpe import load_rmvpe_net


def _close(got: torch.Tensor, want: torch.Tensor) -> None:
    assert got.shape == want.shape
    assert float((got - want).abs().max()) <= 1e-5 * float(want.abs().max())


@pytest.mark.parametrize(
    "conv",
    [
        nn.Conv1d(16, 24, 11, dilation=5, padding=25),
        nn.Conv1d(1, 8, 80, stride=40, padding=20),
        nn.Conv1d(32, 32, 16, padding=8, groups=4),
        nn.ConvTranspose1d(24, 12, 16, 10, padding=3),
    ],
    ids=["dilated", "strided", "grouped", "transposed"],
)
def test_conv1d_rewrite_matches(conv):
    torch.manual_seed(0)
    conv = conv.eval()
    packed = PackedConv1d(conv)
    with torch.no_grad():
        for width in (57, 310):  # two shapes: weights packed for each
            x = torch.randn(1, conv.in_channels, width)
            _close(packed(x), conv(x))
            view = x.transpose(1, 2).contiguous().transpose(1, 2)  # what a rewritten layer emits
            _close(packed(view), conv(x))


@pytest.mark.parametrize("height", [1, 2, 32])
def test_conv2d_rewrite_with_folded_norm_matches(height):
    torch.manual_seed(0)
    conv, norm = nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32)
    norm.running_mean.uniform_(-1, 1)
    norm.running_var.uniform_(0.5, 2)
    norm.weight.data.uniform_(0.5, 1.5)
    norm.bias.data.uniform_(-1, 1)
    plain = nn.Sequential(conv, norm).eval()
    packed = PackedConv2d(conv, norm)
    assert (packed.row is not None) and (packed.row.weight.shape[2] == 1)
    x = torch.randn(1, 16, height, 4)
    with torch.no_grad():
        _close(packed(x), plain(x))


def test_linear_rewrite_matches_for_each_row_count():
    torch.manual_seed(0)
    linear = nn.Linear(64, 96)
    packed = PackedLinear(linear)
    with torch.no_grad():
        for rows in (1, 40, 7):
            x = torch.randn(1, rows, 64)
            _close(packed(x), linear(x))


def test_rewritten_rmvpe_matches_on_a_one_row_stream_input(tiny_models):
    """A 0.31 s rmvpe input leaves one row at the deepest layers (the row shortcut)."""
    path = tiny_models("v2", 40000, True) / "rmvpe.pt"
    plain = load_rmvpe_net(path)
    fast = prepare(load_rmvpe_net(path), "cpu", torch.float32)
    mel = torch.randn(1, 128, 32)
    with torch.no_grad():
        _close(fast(mel), plain(mel))


def test_rewrite_refuses_training_mode():
    with pytest.raises(ValueError, match="eval-mode"):
        use_channels_last(nn.Sequential(nn.Conv1d(2, 2, 3)))
