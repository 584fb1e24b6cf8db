"""`rvcd tune`: measure this machine and pick the block, headroom and precision.

For each precision worth trying and each candidate block (0.05-1.0 s) the configured
engine streams a voice-like signal with the configured extra and crossfade; the p50
and p99 block times give the headroom the worker needs (p99 plus the safety margin,
rounded up to 5 ms). A block fits when that headroom is no longer than the block
itself: the worker then keeps up and finishes every block before it is due. The
choice is the fitting (block, precision) with the lowest end-to-end latency, which
is what the daemon declares: block + 2 periods + headroom + crossfade + 10 ms.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from rvcd.daemon.config import Config, save_config
from rvcd.daemon.engines import build_engine
from rvcd.dsp.benchmark import bench_engine
from rvcd.dsp.precision import resolve
from rvcd.dsp.streamer import StreamShape

CANDIDATE_BLOCKS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0)
"""Block lengths tried, seconds."""
DEFAULT_MARGIN = 0.25
"""Headroom = p99 x (1 + margin): the share of slack kept above the slowest blocks."""
HEADROOM_STEP = 0.005
"""Headroom is rounded up to a multiple of this many seconds."""


@dataclass(frozen=True)
class TuneRow:
    """One measured (precision, block) candidate; times in ms, sizes in seconds."""

    precision: str
    block: float
    crossfade: float
    p50_ms: float
    p99_ms: float
    headroom: float
    latency: float
    fits: bool


def precisions_to_try(cfg: Config) -> list[str]:
    """The configured precision (resolved) and fp32, the exact path, when different; the
    WORLD engine has no networks, so only one pass."""
    if cfg.engine.kind != "rvc":
        return ["fp32"]
    chosen = resolve(cfg.engine.precision, cfg.engine.device)
    return [chosen] if chosen == "fp32" else [chosen, "fp32"]


def end_to_end(cfg: Config, block: float, crossfade: float, headroom: float, rate: int, period: int) -> float:
    """Declared latency, seconds, for these settings (as `daemon.pipeline` computes it)."""
    shape = StreamShape.from_seconds(rate, block, crossfade, cfg.engine.extra)
    samples = shape.block + 2 * period + round(headroom * rate) + shape.latency
    return samples / rate


def measure(
    cfg: Config,
    precisions: list[str],
    blocks: tuple[float, ...] = CANDIDATE_BLOCKS,
    margin: float = DEFAULT_MARGIN,
    rate: int = 48000,
    period: int = 256,
    n_blocks: int = 12,
    progress: Any = None,
) -> list[TuneRow]:
    """Measure every (precision, block); `progress(text)` is called after each."""
    rows = []
    for precision in precisions:
        spec = replace(cfg.engine_spec(), precision=precision)
        engine = build_engine(spec)
        params = cfg.initial_params()
        for block in blocks:
            crossfade = min(cfg.engine.crossfade, block)
            result = bench_engine(engine, rate, block, crossfade, cfg.engine.extra, n_blocks, 2, params)
            headroom = math.ceil(result.p99_ms * (1 + margin) / 1000 / HEADROOM_STEP) * HEADROOM_STEP
            rows.append(
                TuneRow(
                    precision=precision,
                    block=block,
                    crossfade=crossfade,
                    p50_ms=result.total_ms,
                    p99_ms=result.p99_ms,
                    headroom=headroom,
                    latency=end_to_end(cfg, block, crossfade, headroom, rate, period),
                    fits=headroom <= block,
                )
            )
            if progress:
                progress(f"{precision} block {block:.2f} s")
    return rows


def choose(rows: list[TuneRow]) -> TuneRow | None:
    """The fitting row with the lowest end-to-end latency (None if nothing fits)."""
    fitting = [r for r in rows if r.fits]
    return min(fitting, key=lambda r: (r.latency, r.precision != "fp32")) if fitting else None


def table(rows: list[TuneRow], chosen: TuneRow | None) -> str:
    """The measured candidates as a text table, the chosen one marked."""
    lines = [
        "precision  block s  p50 ms  p99 ms   RTF  headroom s  latency ms  fits",
        "---------  -------  ------  ------  ----  ----------  ----------  ----",
    ]
    for r in rows:
        mark = "  <- chosen" if r is chosen else ""
        lines.append(
            f"{r.precision:<9}  {r.block:7.2f}  {r.p50_ms:6.1f}  {r.p99_ms:6.1f}  "
            f"{r.p50_ms / (1000 * r.block):4.2f}  {r.headroom:10.3f}  {1000 * r.latency:10.0f}  "
            f"{'yes' if r.fits else 'no':<4}{mark}"
        )
    return "\n".join(lines)


def summary(rows: list[TuneRow]) -> str:
    """Median p50 RTF per precision: how the precisions compare on this machine."""
    by: dict[str, list[float]] = {}
    for r in rows:
        by.setdefault(r.precision, []).append(r.p50_ms / (1000 * r.block))
    return ", ".join(f"{p} median RTF {statistics.median(v):.2f}" for p, v in by.items())


def write_config(cfg: Config, row: TuneRow, out: Path) -> None:
    """Write a copy of the configuration with the chosen block, crossfade, headroom and
    precision. Relative paths become absolute, so the copy works from anywhere; the
    copy is validated by loading it back."""
    source = cfg.source
    raw = yaml.safe_load(source.read_text()) if source else {}
    raw = raw or {}
    base = source.resolve().parent if source else Path.cwd()
    engine = raw.setdefault("engine", {}) or {}
    raw["engine"] = engine
    for key in ("model", "index", "hubert", "rmvpe"):
        if engine.get(key):
            engine[key] = str((base / Path(engine[key]).expanduser()).resolve())
    if raw.get("models_dir"):
        raw["models_dir"] = str((base / Path(raw["models_dir"]).expanduser()).resolve())
    engine.update(block=row.block, crossfade=row.crossfade, headroom=round(row.headroom, 3))
    if cfg.engine.kind == "rvc":
        engine["precision"] = row.precision
    header = (
        f"# written by `rvcd tune` from {source or 'the defaults'}: block {row.block} s, "
        f"headroom {row.headroom:.3f} s, precision {row.precision}\n"
        f"# measured p50 {row.p50_ms:.1f} ms, p99 {row.p99_ms:.1f} ms per block; declared "
        f"latency {1000 * row.latency:.0f} ms at 48 kHz / 256-sample periods\n"
    )
    save_config(out, header + yaml.safe_dump(raw, sort_keys=False))
