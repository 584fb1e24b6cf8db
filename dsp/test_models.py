"""Random-weight artifacts in the real on-disk formats, for demos, tests and benchmarks.

`write_voice_model` writes an RVC inference `.pth` exactly as RVC's export does (float16
weights, weight-norm layers as weight_g/weight_v, the 18 hyper-parameters);
`write_content_encoder` a Hugging Face HuBERT directory with final_proj; `write_index` a
faiss IVF index. "full" sizes are the real ones (HuBERT base, RVC's shipped configs), so
benchmarks measure what real models cost; "tiny" sizes keep tests fast.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from .content_encoder import ContentEncoder, ContentEncoderConfig
from .content_loader import HF_LAYOUT, rename
from .retrieval import build_index
from .rmvpe import RmvpeNet, RmvpeShape
from .synthesizer import SynthConfig, Synthesizer
from .voice_model import PHONE_DIMS

# RVC's shipped training configs (configs/v1|v2/<rate>.json): upsample rates, kernels and
# spectrogram channels per version and sample rate.
_UPSAMPLING = {
    ("v1", 32000): ([10, 4, 2, 2, 2], [16, 16, 4, 4, 4], 513),
    ("v1", 40000): ([10, 10, 2, 2], [16, 16, 4, 4], 1025),
    ("v1", 48000): ([10, 6, 2, 2, 2], [16, 16, 4, 4, 4], 1025),
    ("v2", 32000): ([10, 8, 2, 2], [20, 16, 4, 4], 513),
    ("v2", 40000): ([10, 10, 2, 2], [16, 16, 4, 4], 1025),
    ("v2", 48000): ([12, 10, 2, 2], [24, 20, 4, 4], 1025),
}
SIZES = ("tiny", "full")
RATES = {"32k": 32000, "40k": 40000, "48k": 48000}

# Layers RVC wraps in weight norm, stored as weight_g/weight_v in its checkpoints.
_WEIGHT_NORMED = re.compile(
    r"^(dec\.ups\.\d+|dec\.resblocks\.\d+\.convs[12]?\.\d+|"
    r"flow\.flows\.\d+\.enc\.(in_layers\.\d+|res_skip_layers\.\d+|cond_layer))\.weight$"
)


def voice_config(version: str, sample_rate: int, size: str, n_speakers: int) -> list:
    """The 18 hyper-parameters in checkpoint order for a model of this kind and size."""
    ups, kernels, spec = _UPSAMPLING[(version, sample_rate)]
    if size == "full":
        inter, hidden, filt, heads, layers, up_ch, gin = 192, 192, 768, 2, 6, 512, 256
    else:
        inter, hidden, filt, heads, layers, up_ch, gin = 32, 32, 64, 2, 2, 64, 16
    return [
        spec,
        32,
        inter,
        hidden,
        filt,
        heads,
        layers,
        3,
        0,
        "1",
        [3, 7, 11],
        [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
        ups,
        up_ch,
        kernels,
        n_speakers,
        gin,
        sample_rate,
    ]


def _split_weight_norm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        if _WEIGHT_NORMED.match(key):
            prefix = key[: -len(".weight")]
            dims = list(range(1, value.dim()))
            out[prefix + ".weight_g"] = torch.linalg.vector_norm(value, dim=dims, keepdim=True)
            out[prefix + ".weight_v"] = value
        else:
            out[key] = value
    return out


def write_voice_model(
    path: str | Path,
    version: str = "v2",
    sample_rate: int = 40000,
    f0: bool = True,
    size: str = "tiny",
    n_speakers: int = 4,
    seed: int = 0,
) -> Path:
    """Write a random-weight RVC voice `.pth` and return its path."""
    path = Path(path)
    raw = voice_config(version, sample_rate, size, n_speakers)
    torch.manual_seed(seed)
    cfg = SynthConfig(*raw[:9], str(raw[9]), *raw[10:])
    synth = Synthesizer(cfg, PHONE_DIMS[version], f0)
    with torch.no_grad():
        for name, p in synth.named_parameters():
            # The flow's output projections start at zero in the reference; random values
            # here make every part of the network matter.
            if name.endswith(".post.weight"):
                p.normal_(0, 0.02)
    state = _split_weight_norm({k: v.detach().half() for k, v in synth.state_dict().items()})
    ckpt = {
        "weight": state,
        "config": raw,
        "info": f"rvcd random test model {version}-{sample_rate // 1000}k-{'f0' if f0 else 'nof0'}-{size}",
        "sr": f"{sample_rate // 1000}k",
        "f0": int(f0),
        "version": version,
    }
    torch.save(ckpt, path)
    return path


def content_encoder_config(size: str, version: str) -> ContentEncoderConfig:
    """HuBERT base for "full"; for "tiny", the smallest network giving `version`'s width
    (v1: 256-d final_proj of layer 9 of a narrow stack; v2: a 768-d two-layer stack)."""
    if size == "full":
        return ContentEncoderConfig()
    wide = version == "v2"
    return ContentEncoderConfig(
        hidden_size=768 if wide else 32,
        num_layers=2 if wide else 12,
        num_heads=2,
        intermediate_size=128 if wide else 64,
        conv_layers=((32, 10, 5),) + ((32, 3, 2),) * 4 + ((32, 2, 2),) * 2,
        pos_conv_kernel=16,
        pos_conv_groups=4,
        final_dim=256,
    )


def write_content_encoder(path: str | Path, size: str = "tiny", version: str = "v2", seed: int = 0) -> Path:
    """Write a random-weight HF HuBERT directory (config, safetensors with final_proj)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    cfg = content_encoder_config(size, version)
    torch.manual_seed(seed)
    model = ContentEncoder(cfg)
    ours = {k: v.contiguous() for k, v in model.state_dict().items()}
    # The positional convolution is stored weight-normed over the kernel axis, as HF does.
    pos = ours.pop("pos_conv.weight")
    ours["pos_conv.parametrizations.weight.original0"] = torch.linalg.vector_norm(
        pos, dim=(0, 1), keepdim=True
    )
    ours["pos_conv.parametrizations.weight.original1"] = pos
    state = rename(ours, HF_LAYOUT, to_checkpoint=True)
    if len(state) != len(ours):
        raise KeyError("some content-encoder parameters have no HF name in HF_LAYOUT")
    save_file(state, str(path / "model.safetensors"))
    config = {
        "architectures": ["HubertModelWithFinalProj"],
        "model_type": "hubert",
        "hidden_size": cfg.hidden_size,
        "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_heads,
        "intermediate_size": cfg.intermediate_size,
        "hidden_act": "gelu",
        "conv_dim": [c for c, _, _ in cfg.conv_layers],
        "conv_kernel": [k for _, k, _ in cfg.conv_layers],
        "conv_stride": [s for _, _, s in cfg.conv_layers],
        "conv_bias": cfg.conv_bias,
        "feat_extract_norm": "group",
        "feat_extract_activation": "gelu",
        "do_stable_layer_norm": False,
        "num_conv_pos_embeddings": cfg.pos_conv_kernel,
        "num_conv_pos_embedding_groups": cfg.pos_conv_groups,
        "classifier_proj_size": cfg.final_dim,
        "layer_norm_eps": cfg.layer_norm_eps,
    }
    (path / "config.json").write_text(json.dumps(config, indent=2))
    (path / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "do_normalize": False,
                "feature_extractor_type": "Wav2Vec2FeatureExtractor",
                "feature_size": 1,
                "padding_value": 0,
                "return_attention_mask": False,
                "sampling_rate": 16000,
            },
            indent=2,
        )
    )
    return path


def write_index(path: str | Path, dim: int, rows: int = 2000, seed: int = 0) -> Path:
    """Write a faiss IVF index of `rows` random `dim`-d feature vectors."""
    rng = np.random.default_rng(seed)
    feats = rng.standard_normal((rows, dim)).astype(np.float32)
    build_index(feats, path, seed=seed)
    return Path(path)


def write_rmvpe(path: str | Path, size: str = "tiny", seed: int = 0) -> Path:
    """Write a random-weight `rmvpe.pt` state dict (full = the real 4-block, 16-channel net)."""
    shape = (
        RmvpeShape(n_blocks=4, n_stages=5, n_inter=4, base_channels=16, n_gru=1, gru_hidden=256)
        if size == "full"
        else RmvpeShape(n_blocks=1, n_stages=5, n_inter=4, base_channels=4, n_gru=1, gru_hidden=32)
    )
    torch.manual_seed(seed)
    net = RmvpeNet(shape)
    torch.save({k: v.detach().clone() for k, v in net.state_dict().items()}, path)
    return Path(path)
