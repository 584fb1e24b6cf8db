"""Networks rewritten for fast inference on the CPU: channels-last convolutions with
prepacked weights, batch norms folded, linear layers through oneDNN.

oneDNN (torch's CPU convolution backend) computes in channels-last, blocked layouts;
given torch's default NCW/NCHW tensors and plain weights it reorders the input, the
weights and the output on every call, which on a 2-core CPU costs more than the
arithmetic. Measured on a 2-core Xeon with AMX (bf16, median of 30 calls): a
128-channel kernel-11 dilated conv over 3100 samples 1.02 ms as a Conv1d, 0.45 ms as
a channels-last height-1 Conv2d with prepacked weights; rmvpe's 512-channel 3x3 conv
on 1x4 pixels 0.56 -> 0.08 ms; the vocoder's first 512->256 transposed conv 0.77 ->
0.20 ms; a [40, 768] x [768, 3072] linear with its weights out of cache 0.62 -> 0.37 ms.

`use_channels_last(net)` rewrites an eval-mode network in place:

- every Conv1d / ConvTranspose1d becomes a height-1 Conv2d whose output stays a
  channels-last view ([batch, channels, time] with channel stride 1), so the next
  layer pays no reorder; Conv2d / ConvTranspose2d take channels-last input;
- a BatchNorm2d directly after a convolution in an `nn.Sequential` is folded into it;
- on the CPU, weights are prepacked once per input shape into oneDNN's (or for fp32
  linear layers MKL's) layout, and the convolutions and linear layers call the
  operators that torch's own compiler (inductor) emits for frozen graphs. Each
  rewritten layer checks itself against the plain torch operator on a probe input when
  it is built and falls back to that operator if the oneDNN one is missing or disagrees.

The arithmetic is the same up to float round-off; the golden tests run the rewritten
networks too.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

_CL = torch.channels_last
_PROBE_WIDTH = 64
"""Width (frames) of the probe input a rewritten layer checks itself on."""
_PACKED_SHAPES = 8
"""Input shapes per layer whose packed weights are kept (a stream uses one or two; a
formant change alters the vocoder's)."""


def _onednn_ok(device: torch.device) -> bool:
    return device.type == "cpu" and torch.backends.mkldnn.is_available()


def _agrees(fast: torch.Tensor, plain: torch.Tensor) -> bool:
    scale = float(plain.float().abs().max()) or 1.0
    tol = 1e-4 if plain.dtype == torch.float32 else 2e-2
    return fast.shape == plain.shape and float((fast.float() - plain.float()).abs().max()) <= tol * scale


def _height1_twin(
    kind: type[nn.Conv2d] | type[nn.ConvTranspose2d],
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: int,
    padding: int,
    dilation: int,
    groups: int,
) -> nn.Conv2d | nn.ConvTranspose2d:
    """A height-1 2-D convolution holding `weight` ([.., .., 1, kernel]) and `bias`,
    with the given width-axis stride, padding and dilation."""
    transposed = kind is nn.ConvTranspose2d
    out_ch = weight.shape[1] * groups if transposed else weight.shape[0]
    in_ch = weight.shape[0] if transposed else weight.shape[1] * groups
    twin = kind(
        in_ch,
        out_ch,
        (1, weight.shape[3]),
        stride=(1, stride),
        padding=(0, padding),
        dilation=(1, dilation),
        groups=groups,
        bias=bias is not None,
        device="meta",
    )
    twin.weight = nn.Parameter(weight.clone(), requires_grad=False)
    if bias is not None:
        twin.bias = nn.Parameter(bias.detach().clone(), requires_grad=False)
    return twin


class PackedConv2d(nn.Module):
    """A Conv2d or ConvTranspose2d on channels-last input with prepacked weights; a
    batch norm that followed the convolution can be folded in."""

    def __init__(self, conv: nn.Conv2d | nn.ConvTranspose2d, norm: nn.BatchNorm2d | None = None) -> None:
        super().__init__()
        if isinstance(conv.padding, str) or conv.padding_mode != "zeros":
            raise ValueError("only zero padding given as numbers can be rewritten")
        self.transposed = isinstance(conv, nn.ConvTranspose2d)
        self.stride = list(conv.stride)
        self.padding = list(conv.padding)
        self.dilation = list(conv.dilation)
        self.output_padding = list(conv.output_padding) if self.transposed else [0, 0]
        self.groups = conv.groups
        weight = conv.weight.detach().clone()
        bias = conv.bias.detach().clone() if conv.bias is not None else None
        if norm is not None:
            scale = norm.weight.detach() / torch.sqrt(norm.running_var.detach() + norm.eps)
            shift = norm.bias.detach() - norm.running_mean.detach() * scale
            # Output channels are dim 1 of a transposed conv's weight (groups == 1 here).
            weight = weight * (scale.view(1, -1, 1, 1) if self.transposed else scale.view(-1, 1, 1, 1))
            bias = shift if bias is None else bias * scale + shift
        self.weight = nn.Parameter(weight.contiguous(memory_format=_CL), requires_grad=False)
        self.bias = None if bias is None else nn.Parameter(bias, requires_grad=False)
        self.packed: dict[tuple[int, ...], torch.Tensor] | None = None
        """Prepacked weights per input shape; None: oneDNN's operators are not used."""
        if _onednn_ok(weight.device) and self._check_onednn():
            self.packed = {}
        self.row = self._row_conv()
        """For inputs one row high: the same convolution with only the kernel's middle
        row, which is all that meets data (the rows above and below meet the zero
        padding), so a third of the weights are read. rmvpe's deepest layers see one
        row whenever a block is 0.32 s or shorter; there they are bound by reading
        weights (31 convolutions of 2.4 M weights on 1 x 4 pixels)."""

    def _row_conv(self) -> PackedConv2d | None:
        kh = self.weight.shape[2]
        if self.transposed or (kh, self.padding[0], self.stride[0], self.dilation[0]) != (3, 1, 1, 1):
            return None
        row = self.weight.detach()[:, :, 1:2, :]
        stride, padding, dilation = self.stride[1], self.padding[1], self.dilation[1]
        return PackedConv2d(_height1_twin(nn.Conv2d, row, self.bias, stride, padding, dilation, self.groups))

    def _plain(self, x: torch.Tensor) -> torch.Tensor:
        if self.transposed:
            return F.conv_transpose2d(
                x,
                self.weight,
                self.bias,
                self.stride,
                self.padding,
                self.output_padding,
                self.groups,
                self.dilation,
            )
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def _pack_for(self, shape: list[int]) -> torch.Tensor:
        """The weights reordered for oneDNN's best layout for input `shape`. The layout
        depends on the shape: weights packed for another width can run 10-100x slower."""
        mkldnn = torch.ops.mkldnn
        if self.transposed:
            return mkldnn._reorder_convolution_transpose_weight(
                self.weight, self.padding, self.output_padding, self.stride, self.dilation, self.groups, shape
            )
        return mkldnn._reorder_convolution_weight(
            self.weight, self.padding, self.stride, self.dilation, self.groups, shape
        )

    def _fast(self, x: torch.Tensor) -> torch.Tensor:
        key = tuple(x.shape)
        packed = self.packed.get(key)
        if packed is None:
            if len(self.packed) >= _PACKED_SHAPES:
                del self.packed[next(iter(self.packed))]
            packed = self.packed[key] = self._pack_for(list(key))
        mkldnn = torch.ops.mkldnn
        if self.transposed:
            return mkldnn._convolution_transpose_pointwise(
                x,
                packed,
                self.bias,
                self.padding,
                self.output_padding,
                self.stride,
                self.dilation,
                self.groups,
                "none",
                [],
                "",
            )
        return mkldnn._convolution_pointwise(
            x, packed, self.bias, self.padding, self.stride, self.dilation, self.groups, "none", [], ""
        )

    def _check_onednn(self) -> bool:
        """Whether oneDNN's operators run this layer and agree with torch's."""
        in_ch = self.weight.shape[0] if self.transposed else self.weight.shape[1] * self.groups
        height = 1 if self.weight.shape[2] == 1 and self.padding[0] == 0 else 8
        probe = torch.randn(1, in_ch, height, _PROBE_WIDTH, dtype=self.weight.dtype)
        probe = probe.contiguous(memory_format=_CL)
        self.packed = {}
        try:
            with torch.no_grad():
                ok = _agrees(self._fast(probe), self._plain(probe))
        except (RuntimeError, AttributeError):
            ok = False
        self.packed = None
        return ok

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=_CL)
        if self.row is not None and x.shape[2] == 1:
            return self.row(x)
        return self._fast(x) if self.packed is not None else self._plain(x)


class PackedConv1d(nn.Module):
    """A Conv1d or ConvTranspose1d run as a height-1 `PackedConv2d`; takes and returns
    [batch, channels, time] (the output is a channels-last view)."""

    def __init__(self, conv: nn.Conv1d | nn.ConvTranspose1d) -> None:
        super().__init__()
        if isinstance(conv.padding, str) or conv.padding_mode != "zeros":
            raise ValueError("only zero padding given as numbers can be rewritten")
        transposed = isinstance(conv, nn.ConvTranspose1d)
        twin = _height1_twin(
            nn.ConvTranspose2d if transposed else nn.Conv2d,
            conv.weight.detach().unsqueeze(2),
            conv.bias,
            conv.stride[0],
            conv.padding[0],
            conv.dilation[0],
            conv.groups,
        )
        if transposed:
            twin.output_padding = (0, conv.output_padding[0])
        self.conv = PackedConv2d(twin)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x.unsqueeze(2)).squeeze(2)


class PackedLinear(nn.Module):
    """A Linear layer on weights prepacked once per input row count: oneDNN's layout
    for bf16/fp16, MKL's for fp32 (what inductor emits for frozen graphs). With weights
    too large for the cache, as in the content encoder, the per-call repacking of plain
    weights costs more than the product: a cold [40, 768] x [768, 3072] bf16 product
    takes 0.62 ms plain and 0.37 ms prepacked (fp32: 1.37 and 0.96 ms)."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.weight = nn.Parameter(linear.weight.detach().contiguous(), requires_grad=False)
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach(), requires_grad=False)
        self.packed: dict[int, torch.Tensor] | None = None
        """Prepacked weights per input row count; None: plain `F.linear`."""
        if _onednn_ok(self.weight.device) and self._check_packed():
            self.packed = {}

    def _check_packed(self) -> bool:
        probe = torch.randn(1, 3, self.weight.shape[1], dtype=self.weight.dtype)
        self.packed = {}
        try:
            with torch.no_grad():
                ok = _agrees(self(probe), F.linear(probe, self.weight, self.bias))
        except (RuntimeError, AttributeError):
            ok = False
        self.packed = None
        return ok

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.packed is None:
            return F.linear(x, self.weight, self.bias)
        rows = x.numel() // x.shape[-1]
        packed = self.packed.get(rows)
        fp32 = self.weight.dtype == torch.float32
        if packed is None:
            if len(self.packed) >= _PACKED_SHAPES:
                del self.packed[next(iter(self.packed))]
            if fp32:
                packed = torch.ops.mkl._mkl_reorder_linear_weight(self.weight, rows)
            else:
                packed = torch.ops.mkldnn._reorder_linear_weight(self.weight, rows)
            self.packed[rows] = packed
        if fp32:
            return torch.ops.mkl._mkl_linear(x, packed, self.weight, self.bias, rows)
        return torch.ops.mkldnn._linear_pointwise(x, packed, self.bias, "none", [], "")


def _foldable(conv: nn.Module, norm: nn.Module) -> bool:
    return (
        isinstance(conv, nn.Conv2d | nn.ConvTranspose2d)
        and isinstance(norm, nn.BatchNorm2d)
        and norm.track_running_stats
        and norm.affine
        and (not isinstance(conv, nn.ConvTranspose2d) or conv.groups == 1)
    )


def _rewrite(net: nn.Module) -> None:
    for name, child in list(net.named_children()):
        if isinstance(child, nn.Sequential):
            layers = list(child)
            for i in range(len(layers) - 1):
                if _foldable(layers[i], layers[i + 1]):
                    child[i] = PackedConv2d(layers[i], layers[i + 1])
                    child[i + 1] = nn.Identity()
        if isinstance(child, nn.Conv1d | nn.ConvTranspose1d):
            setattr(net, name, PackedConv1d(child))
        elif isinstance(child, nn.Conv2d | nn.ConvTranspose2d):
            setattr(net, name, PackedConv2d(child))
        elif type(child) is nn.Linear:
            setattr(net, name, PackedLinear(child))
        else:
            _rewrite(child)


def use_channels_last(net: nn.Module) -> nn.Module:
    """Rewrite `net` in place (see module docstring) and return it, in eval mode.

    Call it once the weights are loaded, cast and on their device: the prepacked
    weights cannot be cast or moved afterwards."""
    if net.training:
        raise ValueError("use_channels_last is for eval-mode networks (batch norms are folded)")
    _rewrite(net)
    return net.eval()


def prepare(net: nn.Module, device: str | torch.device, dtype: torch.dtype) -> nn.Module:
    """`net` cast to `dtype` (but for the submodules a module lists in `fp32_parts`), on
    `device`, in eval mode, and on the CPU rewritten for channels-last inference
    (`use_channels_last`). The one place networks are readied for the live path."""
    net = net.to(device=device, dtype=dtype).eval()
    for module in net.modules():
        for name in getattr(module, "fp32_parts", ()):
            part = getattr(module, name)
            if part is not None:
                part.float()
    if torch.device(device).type == "cpu":
        use_channels_last(net)
    return net
