"""Folding stored weight-norm pairs (g, v) into plain weights for inference."""

from __future__ import annotations

import torch

_PAIRS = (
    (".weight_g", ".weight_v"),
    (".parametrizations.weight.original0", ".parametrizations.weight.original1"),
)


def fold_pair(g: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """weight = g * v / ||v||, the norm taken over every axis except the one g spans.

    That axis is the one where g is not of size 1 (axis 0 when g is all ones-shaped), as
    `torch.nn.utils.weight_norm(dim=...)` stores it. Computed in float32.
    """
    g = g.float()
    v = v.float()
    if g.dim() != v.dim():
        raise ValueError(f"weight-norm shapes differ in rank: g {tuple(g.shape)}, v {tuple(v.shape)}")
    axes = [i for i, n in enumerate(g.shape) if n != 1]
    keep = axes[0] if axes else 0
    if g.shape[keep] != v.shape[keep]:
        raise ValueError(f"weight-norm shapes do not match: g {tuple(g.shape)}, v {tuple(v.shape)}")
    other = [i for i in range(v.dim()) if i != keep]
    norm = torch.linalg.vector_norm(v, dim=other, keepdim=True) if other else v.abs()
    return v * (g / norm)


def fold_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Return a copy of `state` with every weight-norm pair replaced by `<prefix>.weight`."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        for g_suffix, v_suffix in _PAIRS:
            if key.endswith(v_suffix):
                break
            if key.endswith(g_suffix):
                prefix = key[: -len(g_suffix)]
                partner = prefix + v_suffix
                if partner not in state:
                    raise KeyError(f"'{key}' has no matching '{partner}'")
                out[prefix + ".weight"] = fold_pair(value, state[partner])
                break
        else:
            out[key] = value
    return out
