"""The security boundary for model names arriving over the network.

Only files inside `models_dir` may be named: absolute paths, `..` components, NUL bytes,
symlinks that resolve outside the directory and unexpected suffixes are refused.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

MODEL_SUFFIXES = (".pth",)
INDEX_SUFFIXES = (".index",)


class ModelNameError(ValueError):
    """A name that may not be loaded; the message says why."""


def resolve_in(models_dir: Path | None, name: str, suffixes: tuple[str, ...]) -> Path:
    """The file `name` (relative to `models_dir`) after every check, or ModelNameError."""
    if models_dir is None:
        raise ModelNameError("no models_dir is configured, so no model can be loaded over OSC")
    if not name or "\x00" in name or "\\" in name:
        raise ModelNameError(f"{name!r} is not a valid model name")
    path = PurePosixPath(name)
    if path.is_absolute():
        raise ModelNameError(f"{name!r}: absolute paths are refused; name a file inside models_dir")
    if ".." in path.parts:
        raise ModelNameError(f"{name!r}: '..' is refused; name a file inside models_dir")
    if path.suffix.lower() not in suffixes:
        raise ModelNameError(f"{name!r}: only {', '.join(suffixes)} files can be loaded here")
    root = models_dir.resolve()
    try:
        resolved = (root / path).resolve(strict=True)
    except (FileNotFoundError, RuntimeError):
        raise ModelNameError(f"{name!r}: no such file in models_dir") from None
    if not resolved.is_relative_to(root):
        raise ModelNameError(f"{name!r}: resolves outside models_dir (symlink) and is refused")
    if not resolved.is_file():
        raise ModelNameError(f"{name!r}: not a regular file")
    return resolved
