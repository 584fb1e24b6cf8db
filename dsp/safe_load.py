"""Loading untrusted checkpoint files without ever running code from them.

Voice models, `rmvpe.pt` and other plain state dicts go through `torch.load(...,
weights_only=True)`. Legacy fairseq checkpoints (`hubert_base.pt`) pickle training
bookkeeping (an `argparse.Namespace`, sometimes omegaconf configs) that `weights_only`
refuses, so they go through `RestrictedUnpickler`: tensors and plain containers are rebuilt,
known bookkeeping classes become inert `OpaqueRecord`s (their module is never imported and
nothing of theirs is called), and every other global is refused.
"""

from __future__ import annotations

import pickle
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

from .input_limits import DEFAULT_MAX_MODEL_MB


class ModelFileError(ValueError):
    """A model file could not be used; the message names the file and the reason."""


class OpaqueRecord:
    """Stand-in for a pickled object of a bookkeeping class: stores its data, does nothing."""

    def __new__(cls, *args: Any, **kwargs: Any) -> OpaqueRecord:
        # Pickle's NEWOBJ calls __new__ without __init__: all state is set here.
        record = super().__new__(cls)
        record.args = args
        record.kwargs = kwargs
        record.state = None
        record.items = {}
        record.values = []
        return record

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:
        self.items[key] = value

    def append(self, value: Any) -> None:
        self.values.append(value)

    def extend(self, values: Any) -> None:
        self.values.extend(values)


def _rebuild_tensor(storage: Any, offset: int, size: Any, stride: Any, *_: Any) -> torch.Tensor:
    """Rebuild a tensor view of a storage (what `torch._utils._rebuild_tensor_v2` does)."""
    t = torch.empty((0,), dtype=storage.dtype, device=storage._untyped_storage.device)
    return t.set_(storage._untyped_storage, offset, size, stride)


def _rebuild_parameter(data: torch.Tensor, requires_grad: bool, *_: Any) -> torch.Tensor:
    return data


_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("collections", "OrderedDict"): OrderedDict,
    ("argparse", "Namespace"): OpaqueRecord,
}
# Bookkeeping that fairseq checkpoints carry besides the weights (configs, optimizer and
# task state). Objects of these modules become inert records.
_OPAQUE_MODULE_PREFIXES = ("fairseq.", "omegaconf.", "numpy.", "typing", "enum", "pathlib")


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that only rebuilds tensors and plain containers (see module docstring)."""

    def find_class(self, module: str, name: str) -> Any:
        allowed = _ALLOWED_GLOBALS.get((module, name))
        if allowed is not None:
            return allowed
        if module.startswith(_OPAQUE_MODULE_PREFIXES) and "__" not in name:
            return OpaqueRecord
        raise pickle.UnpicklingError(
            f"refused to load global '{module}.{name}': only tensors and plain data are allowed"
        )


class _RestrictedPickleModule:
    """The `pickle_module` handed to `torch.load` for fairseq checkpoints."""

    Unpickler = RestrictedUnpickler
    UnpicklingError = pickle.UnpicklingError
    __name__ = "rvcd_restricted_pickle"

    @staticmethod
    def load(file: Any, **kwargs: Any) -> Any:
        return RestrictedUnpickler(file, **kwargs).load()


def _describe_failure(path: Path, exc: BaseException) -> str:
    text = str(exc)
    found = re.search(r"(?:[Uu]nsupported (?:global: )?GLOBAL|refused to load global) '?([\w.]+)", text)
    if found:
        name = found.group(1)
        return (
            f"{path}: refused: the file asks for '{name}', which is neither a tensor nor plain data; "
            "it may be hostile or not a model file (nothing in it was run)"
        )
    if isinstance(exc, pickle.UnpicklingError) or "Weights only load failed" in text:
        return (
            f"{path}: refused: the file contains objects other than tensors and plain data (nothing was run)"
        )
    if "central directory" in text or "zip archive" in text or isinstance(exc, EOFError):
        return f"{path}: not a complete PyTorch checkpoint (truncated or not a .pth/.pt file)"
    return f"{path}: cannot be read as a PyTorch checkpoint: {text.strip() or type(exc).__name__}"


_max_model_bytes = int(DEFAULT_MAX_MODEL_MB * 2**20)


def set_size_limit(megabytes: float) -> None:
    """Refuse model files larger than `megabytes` MiB from now on (process-wide)."""
    global _max_model_bytes
    _max_model_bytes = int(megabytes * 2**20)


def check_size(path: Path) -> None:
    """Refuse a file over the size limit before any of it is read."""
    size = path.stat().st_size
    if size > _max_model_bytes:
        raise ModelFileError(
            f"{path}: {size / 2**20:.0f} MiB is over the {_max_model_bytes / 2**20:.0f} MiB limit for "
            "model files (engine.max_model_mb)"
        )


def _check_readable(path: Path) -> None:
    """Refuse missing, empty, oversized and non-checkpoint files before torch sees them."""
    if not path.exists():
        raise ModelFileError(f"{path}: no such file")
    if not path.is_file():
        raise ModelFileError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise ModelFileError(f"{path}: file is empty")
    check_size(path)
    with path.open("rb") as f:
        head = f.read(2)
    # A checkpoint is a zip archive (torch >= 1.6) or a raw pickle (protocol >= 2).
    if head != b"PK" and head[:1] != b"\x80":
        raise ModelFileError(f"{path}: not a PyTorch checkpoint (neither a zip archive nor a pickle)")


def load_checkpoint(path: str | Path) -> Any:
    """Load a plain checkpoint (voice `.pth`, `rmvpe.pt`) with `weights_only=True`."""
    path = Path(path)
    _check_readable(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelFileError(_describe_failure(path, exc)) from exc


def load_fairseq_checkpoint(path: str | Path) -> Any:
    """Load a legacy fairseq checkpoint through `RestrictedUnpickler`."""
    path = Path(path)
    _check_readable(path)
    try:
        # weights_only=False is required to pass a pickle_module; the module passed is
        # the restricted one above, which is stricter about what it rebuilds.
        return torch.load(path, map_location="cpu", weights_only=False, pickle_module=_RestrictedPickleModule)
    except Exception as exc:
        raise ModelFileError(_describe_failure(path, exc)) from exc
