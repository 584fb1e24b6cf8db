"""Loading a voice model in the background and swapping it in at a block boundary.

Loads run one at a time on their own thread while the current model keeps converting;
a request that arrives while another is waiting replaces it (the waiting one is told it
was superseded). A failed load (missing, corrupt, hostile, wrong dimension) is reported
and changes nothing. The peak resident memory of the process during the load and swap
is measured (Linux: VmHWM, reset through /proc/self/clear_refs first).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rvcd.dsp.engine_rvc import RvcEngine
from rvcd.dsp.rvc_window import RvcModels
from rvcd.dsp.safe_load import ModelFileError
from rvcd.dsp.streamer import Engine

log = logging.getLogger("rvcd.models")
LOADER_NICE = 10
STOP_WAIT_S = 1.0
"""How long stopping waits for the loader thread before leaving it behind."""
Reply = Callable[[str, list[Any]], None]


def _proc_status_kib(field: str) -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def reset_peak_rss() -> None:
    """Make VmHWM start again from the current RSS (Linux >= 4.0)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def peak_rss_mib() -> float:
    return _proc_status_kib("VmHWM") / 1024


def rss_mib() -> float:
    return _proc_status_kib("VmRSS") / 1024


@dataclass
class SwapRequest:
    model: Path
    index: Path | None
    label: str
    reply: Reply
    params: dict[str, Any] | None = None
    """Parameters to apply with the swap (a preset's), or None."""


class ModelSwapper:
    """Serialised background loads; `install(engine, label, index, model, params)` swaps."""

    def __init__(
        self,
        build: Callable[[Path, Path | None], Engine],
        install: Callable[[Engine, str, Path | None, Path, dict[str, Any] | None], None],
    ) -> None:
        self._build = build
        self._install = install
        self._pending: SwapRequest | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rvcd-model-loader", daemon=True)
        self.last_report: dict[str, float] = {}
        self.failures = 0
        """Loads that failed (bad file, bad network, first block failed)."""
        self._thread.start()

    def request(
        self, model: Path, index: Path | None, label: str, reply: Reply, params: dict[str, Any] | None = None
    ) -> None:
        with self._lock:
            superseded = self._pending
            self._pending = SwapRequest(model, index, label, reply, params)
        if superseded is not None:
            superseded.reply("/rvcd/error", ["/rvcd/model", f"{superseded.label}: superseded by {label}"])
        self._wake.set()

    def stop(self) -> None:
        """Stop taking requests. A load under way is abandoned, not waited for (the thread
        is a daemon thread: stopping stays bounded whatever the load is doing)."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=STOP_WAIT_S)

    def _run(self) -> None:
        # Loading competes with the worker for CPU: let the worker win (Linux applies a
        # thread's nice value to that thread alone).
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LOADER_NICE)
        while not self._stop.is_set():
            self._wake.wait()
            self._wake.clear()
            with self._lock:
                req, self._pending = self._pending, None
            if req is None or self._stop.is_set():
                continue
            try:
                self._load(req)
            except Exception as exc:  # the loader must outlive any one request
                self.failures += 1
                log.exception("model %s: the swap failed, the current model keeps running", req.label)
                req.reply("/rvcd/error", ["/rvcd/model", f"{req.label}: swap failed: {exc!r}"])

    def _load(self, req: SwapRequest) -> None:
        began = time.monotonic()
        before = rss_mib()
        reset_peak_rss()
        try:
            engine = self._build(req.model, req.index)
        except Exception as exc:  # a hostile or broken file may raise anything
            self.failures += 1
            reason = str(exc) if isinstance(exc, ModelFileError | OSError) else f"{req.model}: {exc!r}"
            log.error("model %s not loaded, the current one keeps running: %s", req.label, reason)
            req.reply("/rvcd/error", ["/rvcd/model", reason])
            return
        if self._stop.is_set():
            return
        loaded = time.monotonic()
        self._install(engine, req.label, req.index, req.model, req.params)
        report = {
            "load_s": loaded - began,
            "swap_s": time.monotonic() - loaded,
            "rss_before_mib": before,
            "peak_mib": peak_rss_mib(),
            "rss_after_mib": rss_mib(),
        }
        self.last_report = report
        log.info(
            "model %s active: loaded in %.2f s, swapped in %.2f s, peak memory %.0f MiB (before %.0f MiB)",
            req.label,
            report["load_s"],
            report["swap_s"],
            report["peak_mib"],
            report["rss_before_mib"],
        )
        req.reply("/rvcd/model/loaded", [req.label, report["load_s"], report["peak_mib"]])


def build_rvc_engine(
    model: Path,
    index: Path | None,
    hubert: Path | None,
    rmvpe: Path | None,
    device: str,
    dtype: torch.dtype,
    current: Engine,
) -> Engine:
    """A new RVC engine for `model` in `dtype`, reusing the running content encoder when
    it fits and the running pitch estimators when the rmvpe file, device and precision
    are the same."""
    if not isinstance(current, RvcEngine) or current.dtype != dtype:
        if hubert is None:
            raise ValueError("engine.hubert is not configured: a content encoder is needed for RVC models")
        return RvcEngine(RvcModels.load(model, hubert, index, device=device, dtype=dtype), rmvpe, device)
    from rvcd.dsp.retrieval import RetrievalIndex
    from rvcd.dsp.rvc_window import load_live_encoder, load_live_voice

    encoder = current.models.encoder
    voice = load_live_voice(model, device, dtype)
    if encoder.mismatch(voice.version, voice.meta.phone_dim):
        if hubert is None:
            raise ModelFileError(
                f"{model}: needs {voice.meta.phone_dim}-d features and no other encoder is set"
            )
        encoder = load_live_encoder(hubert, device, dtype)
    models = RvcModels(voice=voice, encoder=encoder)
    problem = encoder.mismatch(voice.version, voice.meta.phone_dim)
    if problem:
        raise ModelFileError(f"{model}: {problem}")
    if index is not None:
        models.index = RetrievalIndex.load(index, expected_dim=voice.meta.phone_dim)
    return current.successor(models, rmvpe, device)
