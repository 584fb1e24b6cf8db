"""Load a HuBERT/ContentVec content encoder from an HF directory or a fairseq checkpoint.

Both layouts hold the same network; their parameter names are mapped onto
`ContentEncoder`, and the shape parameters are read from the tensors (and from the
checkpoint's config for the two that tensors do not show: attention heads and strides).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file as load_safetensors

from .content_encoder import ContentEncoder, ContentEncoderConfig
from .safe_load import ModelFileError, check_size, load_checkpoint, load_fairseq_checkpoint
from .weight_norm import fold_state_dict

# (our name, checkpoint name) prefixes; {n} is a layer number, {proj} one of q/k/v/out_proj.
HF_LAYOUT = (
    ("feature_extractor.group_norm.", "feature_extractor.conv_layers.0.layer_norm."),
    ("feature_extractor.convs.{n}.", "feature_extractor.conv_layers.{n}.conv."),
    ("feature_norm.", "feature_projection.layer_norm."),
    ("feature_proj.", "feature_projection.projection."),
    ("pos_conv.", "encoder.pos_conv_embed.conv."),
    ("encoder_norm.", "encoder.layer_norm."),
    ("layers.{n}.{proj}.", "encoder.layers.{n}.attention.{proj}."),
    ("layers.{n}.attn_norm.", "encoder.layers.{n}.layer_norm."),
    ("layers.{n}.fc1.", "encoder.layers.{n}.feed_forward.intermediate_dense."),
    ("layers.{n}.fc2.", "encoder.layers.{n}.feed_forward.output_dense."),
    ("layers.{n}.final_norm.", "encoder.layers.{n}.final_layer_norm."),
    ("final_proj.", "final_proj."),
)
FAIRSEQ_LAYOUT = (
    ("feature_extractor.group_norm.", "feature_extractor.conv_layers.0.2."),
    ("feature_extractor.convs.{n}.", "feature_extractor.conv_layers.{n}.0."),
    ("feature_norm.", "layer_norm."),
    ("feature_proj.", "post_extract_proj."),
    ("pos_conv.", "encoder.pos_conv.0."),
    ("encoder_norm.", "encoder.layer_norm."),
    ("layers.{n}.{proj}.", "encoder.layers.{n}.self_attn.{proj}."),
    ("layers.{n}.attn_norm.", "encoder.layers.{n}.self_attn_layer_norm."),
    ("layers.{n}.fc1.", "encoder.layers.{n}.fc1."),
    ("layers.{n}.fc2.", "encoder.layers.{n}.fc2."),
    ("layers.{n}.final_norm.", "encoder.layers.{n}.final_layer_norm."),
    ("final_proj.", "final_proj."),
)
_FIELDS = {"n": r"(?P<n>\d+)", "proj": r"(?P<proj>[qkv]_proj|out_proj)"}


def _pattern(template: str) -> re.Pattern[str]:
    regex = re.escape(template)
    for name, group in _FIELDS.items():
        regex = regex.replace(re.escape("{" + name + "}"), group)
    return re.compile("^" + regex)


def rename(
    state: dict[str, torch.Tensor], layout: Iterable[tuple[str, str]], to_checkpoint: bool = False
) -> dict[str, torch.Tensor]:
    """Map checkpoint names onto ours (or ours onto the checkpoint's with `to_checkpoint`);
    names no rule matches (training-only tensors) are dropped."""
    rules = []
    for ours, theirs in layout:
        src, dst = (ours, theirs) if to_checkpoint else (theirs, ours)
        rules.append((_pattern(src), dst))
    out = {}
    for key, value in state.items():
        for pattern, target in rules:
            m = pattern.match(key)
            if m:
                out[target.format(**m.groupdict()) + key[m.end() :]] = value
                break
    return out


_DEFAULT_STRIDES = (5, 2, 2, 2, 2, 2, 2)


def _config_from_tensors(
    state: dict[str, torch.Tensor],
    source: Path,
    num_heads: int,
    strides: tuple[int, ...] | None,
    normalize_input: bool,
) -> ContentEncoderConfig:
    def need(key: str) -> torch.Tensor:
        if key not in state:
            raise ModelFileError(f"{source}: not a HuBERT/ContentVec model (no tensor for '{key}')")
        return state[key]

    n_conv = len([k for k in state if re.fullmatch(r"feature_extractor\.convs\.\d+\.weight", k)])
    if n_conv == 0:
        need("feature_extractor.convs.0.weight")
    strides = strides or _DEFAULT_STRIDES
    if len(strides) != n_conv:
        raise ModelFileError(f"{source}: {n_conv} feature-extractor convolutions but {len(strides)} strides")
    conv_layers = tuple(
        (int(w.shape[0]), int(w.shape[2]), int(s))
        for w, s in zip(
            (need(f"feature_extractor.convs.{i}.weight") for i in range(n_conv)), strides, strict=True
        )
    )
    hidden = int(need("feature_proj.weight").shape[0])
    n_layers = 1 + max((int(m.group(1)) for k in state if (m := re.match(r"layers\.(\d+)\.", k))), default=-1)
    if n_layers == 0:
        need("layers.0.q_proj.weight")
    pos = need("pos_conv.weight")
    final = state.get("final_proj.weight")
    return ContentEncoderConfig(
        hidden_size=hidden,
        num_layers=n_layers,
        num_heads=num_heads,
        intermediate_size=int(need("layers.0.fc1.weight").shape[0]),
        conv_layers=conv_layers,
        conv_bias="feature_extractor.convs.0.bias" in state,
        pos_conv_kernel=int(pos.shape[2]),
        pos_conv_groups=hidden // int(pos.shape[1]),
        final_dim=int(final.shape[0]) if final is not None else 0,
        normalize_input=normalize_input,
    )


def _build(state: dict[str, torch.Tensor], cfg: ContentEncoderConfig, source: Path) -> ContentEncoder:
    model = ContentEncoder(cfg)
    state = {k: v.float() for k, v in state.items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelFileError(f"{source}: tensors do not fit a HuBERT network: {exc}") from exc
    return model.eval()


def _parse_conv_spec(spec: str) -> tuple[int, ...] | None:
    """Strides from fairseq's `conv_feature_layers`, e.g. "[(512,10,5)] + [(512,3,2)] * 4".

    The string is parsed, never evaluated.
    """
    strides: list[int] = []
    for _, _, stride, times in re.findall(
        r"\[\(\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*\)\](?:\s*\*\s*(\d+))?", spec
    ):
        strides.extend([int(stride)] * int(times or 1))
    return tuple(strides) or None


def _load_hf_directory(path: Path) -> ContentEncoder:
    config_file = path / "config.json"
    if not config_file.is_file():
        raise ModelFileError(f"{path}: no config.json (not a Hugging Face model directory)")
    try:
        config: dict[str, Any] = json.loads(config_file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{config_file}: not valid JSON: {exc}") from exc
    if config.get("feat_extract_norm", "group") != "group" or config.get("do_stable_layer_norm"):
        raise ModelFileError(
            f"{config_file}: only HuBERT-base-style encoders (feat_extract_norm 'group', "
            "post-norm layers) are supported"
        )
    weights = path / "model.safetensors"
    if weights.is_file():
        check_size(weights)
        try:
            state = load_safetensors(str(weights))
        except Exception as exc:
            raise ModelFileError(f"{weights}: not a readable safetensors file: {exc}") from exc
    elif (path / "pytorch_model.bin").is_file():
        state = load_checkpoint(path / "pytorch_model.bin")
    else:
        raise ModelFileError(f"{path}: no model.safetensors or pytorch_model.bin")
    state = {k.removeprefix("hubert."): v for k, v in state.items()}
    normalize = False
    pre = path / "preprocessor_config.json"
    if pre.is_file():
        try:
            normalize = bool(json.loads(pre.read_text()).get("do_normalize", False))
        except (OSError, json.JSONDecodeError) as exc:
            raise ModelFileError(f"{pre}: not valid JSON: {exc}") from exc
    state = rename(fold_state_dict(state), HF_LAYOUT)
    strides = tuple(int(s) for s in config.get("conv_stride", _DEFAULT_STRIDES))
    cfg = _config_from_tensors(state, path, int(config.get("num_attention_heads", 12)), strides, normalize)
    return _build(state, cfg, path)


def _load_fairseq(path: Path) -> ContentEncoder:
    ckpt = load_fairseq_checkpoint(path)
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("model"), dict):
        raise ModelFileError(f"{path}: not a fairseq checkpoint (no 'model' state dict)")
    args: dict[str, Any] = {}
    record = ckpt.get("args")
    if record is not None and isinstance(getattr(record, "state", None), dict):
        args = record.state
    cfg_record = ckpt.get("cfg")
    if isinstance(cfg_record, dict) and isinstance(cfg_record.get("model"), dict):
        args = {**cfg_record["model"], **args}
    spec = args.get("conv_feature_layers")
    strides = _parse_conv_spec(spec) if isinstance(spec, str) else None
    state = rename(fold_state_dict(ckpt["model"]), FAIRSEQ_LAYOUT)
    cfg = _config_from_tensors(
        state,
        path,
        int(args.get("encoder_attention_heads", 12)),
        strides,
        bool(args.get("normalize", False)),
    )
    return _build(state, cfg, path)


def load_content_encoder(path: str | Path) -> ContentEncoder:
    """Load `hubert_base.pt` (fairseq) or a ContentVec/HuBERT HF directory, float32, eval."""
    path = Path(path)
    if path.is_dir():
        return _load_hf_directory(path)
    return _load_fairseq(path)
