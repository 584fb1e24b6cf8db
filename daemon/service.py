"""The daemon's lifecycle: start, the worker thread, reload, reconnect, stop.

Threads: JACK's process thread runs `Pipeline.io`; one worker thread runs
`Pipeline.work` (all inference); the OSC thread serves control; the model loader loads
voice models; the main thread runs `serve()`, which reacts to signals (SIGHUP reload,
SIGTERM/SIGINT stop) and JACK events (server gone, rate or period change), logs
statistics and talks to systemd. It pings the systemd watchdog only while the worker and
the OSC thread both show signs of life, so a hung control thread restarts the service
too.
"""

from __future__ import annotations

import logging
import math
import queue
import signal
import sys
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from rvcd.control.osc_server import OscBindError, OscServer, OscSettings, Reply, resolve_senders
from rvcd.control.param_store import ParamStore
from rvcd.control.presets import PresetError, model_preset_path, read_preset
from rvcd.daemon.config import Config, ConfigError, changed_keys, load_config, save_config
from rvcd.daemon.engines import build_engine
from rvcd.daemon.jack_io import JackIO, JackLostError, JackUnavailableError
from rvcd.daemon.model_swap import ModelSwapper, build_rvc_engine
from rvcd.daemon.pipeline import Pipeline
from rvcd.daemon.sdnotify import Notifier
from rvcd.daemon.virtual_mic import VirtualMic
from rvcd.dsp.engine_world import WORLD_F0_METHODS, WorldEngine
from rvcd.dsp.precision import describe as describe_precision
from rvcd.dsp.safe_load import ModelFileError, set_size_limit
from rvcd.dsp.stream_params import StreamParams
from rvcd.dsp.streamer import Engine, Streamer, StreamShape

log = logging.getLogger("rvcd")
RECONNECT_MIN_S = 0.5
RECONNECT_MAX_S = 5.0
STATUS_EVERY_S = 5.0
STOP_WAIT_S = 1.0
"""How long stopping waits for the worker to finish its block."""
STALLED_AFTER_S = 3.0
"""A JACK client that has had no process cycle for this long has lost its server:
PipeWire's JACK (0.3.65 at least) never calls the shutdown callback when PipeWire
exits or restarts, it just stops scheduling the client."""
HUNG_AFTER_S = 10.0
"""A thread that has not gone round its loop for this long (or three blocks, if longer)
counts as hung: the systemd watchdog is no longer pinged."""
PROBLEM_COUNTERS = (
    "block_errors",
    "load_failures",
    "osc_malformed",
    "osc_flooded",
    "osc_oversized",
    "osc_refused",
    "osc_internal_errors",
)
"""Status counters that the periodic log line and systemd STATUS show once non-zero."""


class StartupInterrupted(BaseException):
    """SIGTERM or SIGINT arrived while the daemon was starting (a BaseException, so no
    library's `except Exception` swallows it)."""


@dataclass
class Counters:
    """Totals that survive reconfigurations and reconnections."""

    underruns: int = 0
    late_blocks: int = 0
    xruns: int = 0
    reconnects: int = 0
    block_errors: int = 0
    reload_failures: int = 0
    limited_blocks: int = 0


class Daemon:
    """One rvcd instance. `engine` may be injected (tests); otherwise built from config."""

    def __init__(self, cfg: Config, engine: Engine | None = None, notifier: Notifier | None = None) -> None:
        self.cfg = cfg
        self.store = ParamStore(cfg.initial_params())
        self.notifier = notifier or Notifier()
        set_size_limit(cfg.engine.max_model_mb)
        self.engine = engine or build_engine(cfg.engine_spec())
        self.jack: JackIO | None = None
        self._patch: set[tuple[str, str]] = set()
        """Connections of our ports when the last client went away, restored on the next."""
        self.pipeline: Pipeline | None = None
        self.counters = Counters()
        self.started_at = time.monotonic()
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._switches: queue.Queue[tuple[Path, dict[str, Any], Future[bool]]] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._worker_error: BaseException | None = None
        self.worker_beat = time.monotonic()
        """When the worker last went round its loop (monotonic s)."""
        self._starting = False
        self._interruptible = False
        """True while start() warms the engine up: the one long step a stop signal must
        cut short (raising anywhere else could land in a libjack callback on this thread,
        which cffi swallows with a traceback)."""
        self._hung_reported = False
        self.model_label = cfg.engine.model.name if cfg.engine.model else ""
        self.index_label = cfg.engine.index.name if cfg.engine.index else ""
        self.osc: OscServer | None = None
        self.virtual_mic = VirtualMic(cfg.virtual_mic, cfg.jack.channels) if cfg.virtual_mic.enabled else None
        self.swapper = ModelSwapper(self._build_swap_engine, self._install_engine)
        torch.set_num_threads(cfg.engine.worker_threads())
        if cfg.engine.kind == "rvc":
            log.info(
                "engine rvc: %s, device %s, %d torch threads",
                describe_precision(cfg.engine.precision, cfg.engine.device),
                cfg.engine.device,
                torch.get_num_threads(),
            )
        # The JACK callback needs the GIL: hand it over quickly while the worker runs Python.
        sys.setswitchinterval(0.001)

    # -- latency and status ---------------------------------------------------------------

    def latency_samples(self) -> int:
        """Declared input-to-output latency in samples (0 before the first pipeline)."""
        return self.pipeline.latency if self.pipeline else 0

    def latency_seconds(self) -> float:
        return self.latency_samples() / self.jack.rate if self.jack and self.pipeline else 0.0

    def status(self) -> dict[str, Any]:
        """Everything `/rvcd/status` and the logs report."""
        p = self.pipeline
        stats = p.stats() if p else None
        return {
            "params": self.effective_params(),
            "engine": self.engine.name,
            "model": self.model_label,
            "rate": self.jack.rate if self.jack else 0,
            "period": self.jack.period if self.jack else 0,
            "latency_samples": self.latency_samples(),
            "latency_ms": 1000 * self.latency_seconds(),
            "load": stats.load if stats else 0.0,
            "p50_ms": stats.p50_ms if stats else 0.0,
            "p99_ms": stats.p99_ms if stats else 0.0,
            "xruns": self.counters.xruns + (self.jack.xruns if self.jack else 0),
            "underruns": self.counters.underruns + (p.underruns if p else 0),
            "late_blocks": self.counters.late_blocks + (p.late_blocks if p else 0),
            "blocks": stats.blocks if stats else 0,
            "uptime_s": time.monotonic() - self.started_at,
            "reconnects": self.counters.reconnects,
            "client": self.jack.name if self.jack else "",
            "block_errors": self.counters.block_errors + (p.errors if p else 0),
            "load_failures": self.swapper.failures + self.counters.reload_failures,
            "limiter_db": p.limiter_reduction_db() if p else 0.0,
            "limited_blocks": self.counters.limited_blocks + (p.limited_blocks() if p else 0),
            **(self.virtual_mic.status() if self.virtual_mic else VirtualMic.absent()),
            **(self.osc.counters.dropped() if self.osc else {}),
        }

    # -- control target (OSC) ---------------------------------------------------------------

    def meters(self) -> dict[str, float]:
        p = self.pipeline

        def db(x: float) -> float:
            return float(20 * math.log10(max(x, 1e-6)))

        return {
            "in_db": db(float(p.level_in.max())) if p else -120.0,
            "out_db": db(float(p.level_out.max())) if p else -120.0,
            "latency_ms": 1000 * self.latency_seconds(),
            "load": p.stats().load if p else 0.0,
        }

    def effective_params(self) -> StreamParams:
        """The parameters as they act on the running engine (the WORLD engine's pitch
        estimator is dio or harvest whatever else was asked for)."""
        params = self.store.snapshot()
        if isinstance(self.engine, WorldEngine):
            params = params.with_changes(f0_method=self.engine.effective_f0(params))
        return params

    def no_effect(self, name: str, value: Any) -> str | None:
        """Why setting `name` to `value` changes nothing with the running engine, or None."""
        engine = self.engine
        if name.startswith("monitor_") and not self.cfg.jack.monitor:
            return f"{name} has no effect: there are no monitor ports (set jack.monitor: true)"
        if isinstance(engine, WorldEngine):
            if name in ("index_rate", "speaker", "protect"):
                return f"{name} has no effect on the WORLD engine (it needs an RVC voice model)"
            if name == "f0_method" and value not in WORLD_F0_METHODS:
                return f"the WORLD engine estimates pitch with dio or harvest; it keeps {engine.f0_method}"
            return None
        models = getattr(engine, "models", None)
        if models is None:
            return None
        if name == "index_rate" and models.index is None and value > 0:
            return f"index_rate has no effect: {self.model_label} runs without a retrieval index"
        if name in ("pitch", "f0_method") and not models.voice.f0:
            return f"{name} has no effect: {self.model_label} takes no pitch (a no-f0 model)"
        return None

    def n_speakers(self) -> int | None:
        models = getattr(self.engine, "models", None)
        return models.voice.meta.n_speakers if models is not None else None

    def model_name(self) -> str:
        return self.model_label

    def request_model(
        self, model: Path, index: Path | None, label: str, reply: Reply, params: dict[str, Any] | None = None
    ) -> None:
        self.swapper.request(model, index, label, reply, params)

    def _build_swap_engine(self, model: Path, index: Path | None) -> Engine:
        """Loader thread: load `model`, then try it on one block before it may replace the
        running one."""
        e = self.cfg.engine
        dtype = self.cfg.engine_spec().dtype()
        engine = build_rvc_engine(model, index, e.hubert, e.rmvpe, e.device, dtype, self.engine)
        self._trial(engine, str(model))
        return engine

    def _trial(self, engine: Engine, what: str, shape: StreamShape | None = None) -> None:
        """Convert one silent block with a fork of `engine` in the running stream shape (or
        `shape`); raises ModelFileError naming `what` if that fails or gives non-finite
        samples. Also warms the engine up for that shape."""
        if shape is None:
            e = self.cfg.engine
            p = self.pipeline
            shape = p.shape if p else StreamShape.from_seconds(48000, e.block, e.crossfade, e.extra)
        try:
            out = Streamer(engine.fork(), shape).process(
                np.zeros(shape.block, dtype=np.float32), self.store.snapshot().with_changes(bypass=False)
            )
        except Exception as exc:
            raise ModelFileError(f"{what}: loads, but converting a first block failed: {exc!r}") from exc
        if not np.isfinite(out).all():
            raise ModelFileError(f"{what}: loads, but its first block gives NaN or infinite samples")

    def _install_engine(
        self, engine: Engine, label: str, index: Path | None, model: Path, params: dict[str, Any] | None
    ) -> None:
        """Loader thread: swap `engine` in. The parameters of a preset that came with it,
        else those of the model's own preset (`STEM.preset.yaml` beside it), are applied
        by the worker at the same block boundary as the new voice."""
        if params is None and model_preset_path(model).is_file():
            try:
                params = read_preset(model_preset_path(model)).values
                log.info("model %s: applying its preset %s", label, model_preset_path(model).name)
            except PresetError as exc:
                log.warning("model %s: its preset is not applied: %s", label, exc)

        def apply() -> None:
            for key, value in (params or {}).items():
                self.store.set(key, value)

        pipeline = self.pipeline
        if pipeline is None:
            apply()
        elif not pipeline.swap_engine(engine, before=apply):
            log.warning("the worker did not take model %s within 30 s", label)
        self.engine = engine
        self.model_label = label
        self.index_label = index.name if index else ""
        models = getattr(engine, "models", None)
        if models is not None:
            n = models.voice.meta.n_speakers
            if self.store.snapshot().speaker >= n:
                self.store.set("speaker", n - 1)
        if self.osc is not None:
            self.osc.broadcast("/rvcd/model", [label])
        log.info("running: %s", self.setup_line())

    def setup_line(self) -> str:
        """Everything that is running, in one line for the log: engine, model, files,
        pitch estimator, precision, stream shape, latency, JACK client and OSC."""
        e = self.cfg.engine
        models = getattr(self.engine, "models", None)
        parts = [f"engine {self.engine.name}"]
        if models is not None:
            voice = models.voice
            kind = f"{voice.version}, {voice.sample_rate} Hz, {'f0' if voice.f0 else 'no f0'}"
            parts += [
                f"model {self.model_label} ({kind}, {voice.meta.n_speakers} speaker(s))",
                f"index {self.index_label or 'none'}",
                f"content encoder {e.hubert}",
                f"f0 {self.store.snapshot().f0_method}" + (f" ({e.rmvpe})" if e.rmvpe else ""),
                describe_precision(e.precision, e.device),
            ]
        else:
            parts.append(f"f0 {self.effective_params().f0_method}")
        parts.append(f"device {e.device}, {torch.get_num_threads()} thread(s)")
        shape = f"block {e.block:g} s, extra {e.extra:g} s, crossfade {e.crossfade:g} s"
        parts.append(f"{shape}, headroom {e.headroom:g} s")
        if self.jack is not None and self.pipeline is not None:
            j = self.jack
            lat = self.pipeline.latency
            ms = 1000 * lat / j.rate
            client = f"JACK '{j.name}' {j.rate} Hz period {j.period}"
            parts.append(f"{client}, latency {lat} samples ({ms:.1f} ms)")
        if e.limiter:
            parts.append(f"limiter {e.limiter_ceiling:g} dBTP")
        if self.virtual_mic is not None:
            parts.append(self.virtual_mic.describe())
        parts.append(f"OSC {self.osc.settings.bind} port {self.osc.port}" if self.osc else "OSC off")
        return "; ".join(parts)

    def _status_line(self) -> str:
        s = self.status()
        problems = "".join(f", {key.replace('_', ' ')} {s[key]}" for key in PROBLEM_COUNTERS if s.get(key))
        if self.virtual_mic is not None and not s["virtual_mic_linked"]:
            problems += ", virtual mic " + ("not linked" if s["virtual_mic"] else "unavailable")
        return (
            f"{s['engine']} {s['rate']} Hz, latency {s['latency_ms']:.0f} ms, load {s['load']:.2f}, "
            f"p99 {s['p99_ms']:.0f} ms, xruns {s['xruns']}, underruns {s['underruns']}{problems}"
        )

    # -- building -------------------------------------------------------------------------

    def _make_pipeline(self, rate: int, period: int) -> Pipeline:
        e = self.cfg.engine
        shape = StreamShape.from_seconds(rate, e.block, e.crossfade, e.extra)
        engines = [self.engine.fork() for _ in range(self.cfg.jack.channels)]
        return Pipeline(
            engines,
            shape,
            period,
            int(round(e.headroom * rate)),
            self.store,
            underrun_silence=self.cfg.jack.underrun == "silence",
            limiter_ceiling=e.limiter_ceiling if e.limiter else None,
        )

    def _retire_pipeline(self) -> None:
        if self.pipeline is not None:
            self.counters.underruns += self.pipeline.underruns
            self.counters.late_blocks += self.pipeline.late_blocks
            self.counters.block_errors += self.pipeline.errors
            self.counters.limited_blocks += self.pipeline.limited_blocks()

    def _connect(self) -> None:
        """Open the JACK client, build and warm up a pipeline, activate, connect ports."""
        jack_io = JackIO(self.cfg.jack, self.latency_samples)
        try:
            pipeline = self._make_pipeline(jack_io.rate, jack_io.period)
            self._interruptible = self._starting
            try:
                if self._interruptible and self._stop.is_set():
                    raise StartupInterrupted("stop requested while starting")
                warm_ms = pipeline.warm_up()
            finally:
                self._interruptible = False
        except BaseException:
            jack_io.close()
            raise
        self._retire_pipeline()
        self.pipeline = pipeline
        jack_io.pipeline = pipeline
        if self.virtual_mic is not None:
            jack_io.not_physical = (f"{self.virtual_mic.cfg.description}:",)
        jack_io.activate()
        self.jack = jack_io
        jack_io.update_latency()
        if self.virtual_mic is not None:
            self.virtual_mic.update(jack_io.on_pipewire)
        jack_io.restore(self._patch)
        log.info(
            "JACK client '%s' active at %d Hz, period %d: %d channel(s), engine %s, block %.3f s, "
            "latency %d samples (%.1f ms), warm-up %.0f ms",
            jack_io.name,
            jack_io.rate,
            jack_io.period,
            self.cfg.jack.channels,
            self.engine.name,
            pipeline.shape.block / jack_io.rate,
            pipeline.latency,
            1000 * pipeline.latency / jack_io.rate,
            warm_ms,
        )

    def _connect_again(self) -> None:
        """Leave JACK and join again (new rate, period or configuration); if the server
        is gone meanwhile, the serve loop keeps trying to reconnect."""
        self._disconnect()
        try:
            self._connect()
        except JackUnavailableError as exc:
            log.warning("%s", exc)

    def _disconnect(self) -> None:
        if self.jack is not None:
            self._patch = self.jack.patch()
            self.counters.xruns += self.jack.xruns
            self.jack.pipeline = None
            self.jack.close()
            self.jack = None

    # -- worker ---------------------------------------------------------------------------

    def _work(self) -> None:
        reported_errors = 0
        try:
            while not self._stop.is_set():
                self.worker_beat = time.monotonic()
                pipeline = self.pipeline
                if pipeline is None or not pipeline.work():
                    time.sleep(0.001)
                elif pipeline.errors != reported_errors:
                    if reported_errors == 0 or pipeline.errors % 100 == 0:
                        log.error(
                            "conversion failed (%d blocks so far), playing dry: %s",
                            pipeline.errors,
                            pipeline.last_error,
                        )
                    reported_errors = pipeline.errors
        except BaseException as exc:  # reported by serve(), which stops the daemon
            self._worker_error = exc
            self._stop.set()

    # -- lifecycle ------------------------------------------------------------------------

    def _osc_settings(self, cfg: Config) -> OscSettings:
        o = cfg.osc
        senders = resolve_senders(o.allowed_senders)
        return OscSettings(
            o.bind, o.port, senders, o.reply_port, o.meter_rate, cfg.models_dir, cfg.presets_dir, o.query_port
        )

    def start(self) -> None:
        """Connect to JACK, start converting and listening for OSC; raises
        JackUnavailableError if no server, OscBindError if the OSC port is taken, and
        StartupInterrupted if SIGTERM/SIGINT arrives meanwhile (see `handle_signals`). A
        server that goes away while rvcd sets up is reconnected to by `serve()`."""
        self._starting = True
        try:
            if self.cfg.osc.enabled:
                self.osc = OscServer(self._osc_settings(self.cfg), self)
            try:
                self._connect()
            except JackLostError as exc:
                log.warning("%s", exc)
            self.worker_beat = time.monotonic()
            self._worker = threading.Thread(target=self._work, name="rvcd-worker", daemon=True)
            self._worker.start()
            if self.osc is not None:
                self.osc.start()
        finally:
            self._starting = False
        self._interruptible = False
        """True while start() warms the engine up: the one long step a stop signal must
        cut short (raising anywhere else could land in a libjack callback on this thread,
        which cffi swallows with a traceback)."""
        if self._stop.is_set():
            raise StartupInterrupted("stop requested while starting")
        log.info("running: %s", self.setup_line())
        self.notifier.ready(self._status_line())

    def stop(self) -> None:
        """Stop the worker, unregister the ports and leave JACK, in about a second whatever
        is under way (a model load or a block is not waited for)."""
        self.notifier.stopping()
        self._stop.set()
        if self.osc is not None:
            self.osc.stop()
        self.swapper.stop()
        if self._worker is not None:
            # A daemon thread: a block still converting is left behind, not waited for.
            self._worker.join(timeout=STOP_WAIT_S)
        summary = self._status_line()
        self._disconnect()
        if self.virtual_mic is not None:
            self.virtual_mic.close()
        log.info("stopped: %s", summary)

    def request_stop(self) -> None:
        self._stop.set()

    def request_reload(self) -> None:
        self._reload.set()

    def request_switch(self, source: Path, overrides: dict[str, Any]) -> Future[bool]:
        """Ask the serve loop to run on another configuration file (a session manager's
        switch); the future tells whether it took."""
        done: Future[bool] = Future()
        self._switches.put((source, overrides, done))
        return done

    def save_params(self, path: Path) -> None:
        """Write the parameters in effect (set over OSC or otherwise) into the
        configuration file `path`, atomically; the file is rewritten as plain YAML."""
        data = yaml.safe_load(path.read_text()) or {}
        params = self.store.snapshot()
        engine = data.setdefault("engine", {})
        for name in vars(self.cfg.initial_params()):
            if hasattr(self.cfg.engine, name):  # bypass is a live switch, not configuration
                engine[name] = getattr(params, name)
        self.cfg = save_config(path, yaml.safe_dump(data, sort_keys=False), self.cfg.overrides)
        log.info("saved the running parameters to %s", path)

    def reload(self, source: Path | None = None, overrides: dict[str, Any] | None = None) -> bool:
        """Re-read the configuration file (or read `source` with `overrides` instead) and
        apply what changed, all or nothing: a bad file, a model that does not load or
        convert, or an OSC port that cannot be bound keeps the running configuration.
        Parameters that the file does not change keep the values set over OSC."""
        source = source or self.cfg.source
        if source is None:
            log.warning("reload requested but the configuration did not come from a file")
            return False
        try:
            new = load_config(source, self.cfg.overrides if overrides is None else overrides)
            changed = changed_keys(self.cfg, new)
            self._apply(new, changed)
        except Exception as exc:  # anything a new file or engine raises: keep running
            self.counters.reload_failures += 1
            # Our own errors are sentences naming the key or file; others show their type.
            reason = str(exc) if isinstance(exc, ConfigError | ModelFileError | OscBindError) else repr(exc)
            log.error("reload failed, keeping the running configuration: %s", reason)
            return False
        if changed:
            log.info("configuration reloaded from %s: applied %s", new.source, ", ".join(changed))
            log.info("running: %s", self.setup_line())
        else:
            log.info("configuration reloaded from %s: nothing changed", new.source)
        return True

    def _apply(self, new: Config, changed: list[str]) -> None:
        """Make `new` the running configuration; everything that can fail happens before
        anything changes."""
        old = self.cfg
        rebuild = new.engine_spec() != old.engine_spec()
        reconnect = rebuild or any(
            key.startswith("jack.")
            or key
            in (
                "engine.block",
                "engine.extra",
                "engine.crossfade",
                "engine.headroom",
                "engine.limiter",
                "engine.limiter_ceiling",
            )
            for key in changed
        )
        set_size_limit(new.engine.max_model_mb)
        try:
            engine = self.engine
            if rebuild:
                engine = build_engine(new.engine_spec())
                self._trial(engine, "the new engine", self._shape_for(new))
            elif reconnect:
                self._trial(engine, "the engine", self._shape_for(new))
            self._apply_osc(new)
        except BaseException:
            set_size_limit(old.engine.max_model_mb)
            raise
        self.engine = engine
        self.cfg = new
        if rebuild:
            self.model_label = new.engine.model.name if new.engine.model else ""
            self.index_label = new.engine.index.name if new.engine.index else ""
        if any(key.startswith("virtual_mic.") or key == "jack.channels" for key in changed):
            self._replace_virtual_mic(new, reconnect)
        if "engine.threads" in changed:
            torch.set_num_threads(new.engine.worker_threads())
        if "log.level" in changed and logging.getLogger().level == logging.getLevelName(
            old.log.level.upper()
        ):
            logging.getLogger().setLevel(new.log.level.upper())
        old_params, new_params = old.initial_params(), new.initial_params()
        for name in vars(new_params):
            if getattr(new_params, name) != getattr(old_params, name):
                self.store.set(name, getattr(new_params, name))
        if reconnect:
            self._connect_again()

    def _replace_virtual_mic(self, new: Config, reconnect: bool) -> None:
        """Remove the virtual microphone and make the one `new` asks for (if any); a
        reconnection that follows links it, otherwise it is linked here."""
        if self.virtual_mic is not None:
            self.virtual_mic.close()
        self.virtual_mic = VirtualMic(new.virtual_mic, new.jack.channels) if new.virtual_mic.enabled else None
        if self.virtual_mic is not None and self.jack is not None and not reconnect:
            self.virtual_mic.update(self.jack.on_pipewire)

    def _shape_for(self, cfg: Config) -> StreamShape:
        e = cfg.engine
        return StreamShape.from_seconds(self.jack.rate if self.jack else 48000, e.block, e.crossfade, e.extra)

    def _apply_osc(self, new: Config) -> None:
        """Start, stop or retune the OSC server for `new` (a new port is bound first)."""
        if not new.osc.enabled:
            if self.osc is not None:
                self.osc.stop()
                self.osc = None
            return
        settings = self._osc_settings(new)
        if self.osc is None:
            self.osc = OscServer(settings, self)
            self.osc.start()
        else:
            self.osc.apply(settings)

    def _reconnect(self) -> None:
        log.warning("the JACK server went away; reconnecting (state kept)")
        self._disconnect()
        delay = RECONNECT_MIN_S
        attempts = 0
        while not self._stop.wait(delay):
            attempts += 1
            try:
                self._connect()
                self.counters.reconnects += 1
                log.info("reconnected to JACK after %d attempt(s)", attempts)
                return
            except JackUnavailableError:
                if attempts == 1 or attempts % 10 == 0:
                    log.info("JACK still unavailable (attempt %d, retrying every %.1f s)", attempts, delay)
                delay = min(RECONNECT_MAX_S, delay * 2)

    def handle_signals(self) -> None:
        """Make SIGHUP reload and SIGTERM/SIGINT stop. Call on the main thread before
        `start()`: a stop requested while starting interrupts the start (bounded, however
        long the warm-up), a reload requested then runs once the daemon is up."""

        def stop(*_: Any) -> None:
            self._stop.set()
            if self._interruptible:
                raise StartupInterrupted("stop requested while starting")

        signal.signal(signal.SIGHUP, lambda *_: self._reload.set())
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)

    def _hung_threads(self, now: float) -> list[str]:
        """Threads that have not gone round their loops lately, with how long."""
        limit = max(HUNG_AFTER_S, 3 * self.cfg.engine.block)
        beats = [("worker", self.worker_beat)] if self._worker is not None else []
        if self.osc is not None:
            beats.append(("OSC", self.osc.heartbeat))
        return [f"{name} ({now - beat:.0f} s)" for name, beat in beats if now - beat > limit]

    def _watchdog(self, now: float) -> None:
        """Ping systemd's watchdog if every thread is alive; otherwise say which is not."""
        hung = self._hung_threads(now)
        if not hung:
            self.notifier.watchdog()
            self._hung_reported = False
        elif not self._hung_reported:
            log.error("not pinging the systemd watchdog: no progress in the %s thread(s)", ", ".join(hung))
            self._hung_reported = True

    def _watch_cycles(
        self, jack_io: JackIO | None, seen: tuple[JackIO | None, int, float]
    ) -> tuple[JackIO | None, int, float]:
        """Mark the server gone if `jack_io` has had no process cycle for STALLED_AFTER_S;
        `seen` is (client, its cycle count, when that count was first seen)."""
        now = time.monotonic()
        if jack_io is None or jack_io is not seen[0] or jack_io.cycles != seen[1]:
            return (jack_io, jack_io.cycles if jack_io else 0, now)
        if now - seen[2] > STALLED_AFTER_S and not jack_io.server_gone.is_set():
            log.warning(
                "no JACK process cycle for %.0f s: the server stopped running rvcd (PipeWire restarted?)",
                now - seen[2],
            )
            jack_io.stall()
        return seen

    def serve(self) -> int:
        """Run until stopped by a signal (see `handle_signals`) or `request_stop()`, then
        stop; returns the process exit status."""
        last_stats = last_status = last_ping = time.monotonic()
        cycles = (None, 0, last_ping)
        while not self._stop.wait(0.1):
            if self._reload.is_set():
                self._reload.clear()
                self.reload()
            while not self._switches.empty():
                source, overrides, done = self._switches.get()
                done.set_result(self.reload(source, overrides))
            jack_io = self.jack
            cycles = self._watch_cycles(jack_io, cycles)
            if jack_io is None or jack_io.server_gone.is_set():
                self._reconnect()
            elif jack_io.reconfigure.is_set():
                log.info("JACK changed to %d Hz, period %d: reconfiguring", jack_io.rate, jack_io.period)
                self._connect_again()
            now = time.monotonic()
            ping = self.notifier.watchdog_interval
            if ping is not None and now - last_ping >= ping:
                self._watchdog(now)
                last_ping = now
            if now - last_status >= STATUS_EVERY_S:
                if self.virtual_mic is not None and self.jack is not None:
                    self.virtual_mic.check(self.jack.on_pipewire)
                self.notifier.status(self._status_line())
                last_status = now
            interval = self.cfg.log.stats_interval
            if interval and now - last_stats >= interval:
                log.info("%s", self._status_line())
                last_stats = now
        self.stop()
        if self._worker_error is not None:
            log.error("the worker failed: %s", self._worker_error)
            return 1
        return 0
