"""The `rvcd` command line: one sub-command per job, each with its own --help."""

from __future__ import annotations

import argparse
import difflib
import inspect
import json
import logging
import math
import os
import re
import signal
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from rvcd import __version__
from rvcd.daemon.engines import ENGINE_KINDS, EngineSpec, build_engine
from rvcd.daemon.tune import DEFAULT_MARGIN as TUNE_MARGIN
from rvcd.dsp.engine_world import WORLD_F0_METHODS
from rvcd.dsp.input_limits import MAX_AUDIO_RATE, MIN_AUDIO_RATE
from rvcd.dsp.precision import DEFAULT_PRECISION, PRECISIONS
from rvcd.dsp.stream_params import GATE_OFF_DB, MAX_SPEAKER, RANGES, StreamParams
from rvcd.dsp.streamer import SHAPE_DEFAULTS, SHAPE_RANGES, Streamer, StreamShape

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2

log = logging.getLogger("rvcd")


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 1."""


class _Parser(argparse.ArgumentParser):
    """argparse that suggests the closest option or command for a misspelt one."""

    def error(self, message: str) -> NoReturn:
        words: list[str] = []
        known: list[str] = []
        unknown = re.match(r"unrecognized arguments: (.*)", message)
        choice = re.match(r"argument \S+: invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if unknown:
            words = [w.split("=")[0] for w in unknown.group(1).split() if w.startswith("-")]
            known = [o for action in self._actions for o in action.option_strings]
        elif choice:
            words, known = [choice.group(1)], re.findall(r"'([^']*)'", choice.group(2))
        hints = [f"{w}: did you mean {m[0]}?" for w in words if (m := difflib.get_close_matches(w, known, 1))]
        super().error("; ".join([message, *hints]))


def _other_model(path: Path) -> dict[str, Any] | None:
    """What a file that is not a voice model is, if it is an rmvpe or content encoder."""
    from dataclasses import asdict

    from rvcd.dsp.content_loader import load_content_encoder
    from rvcd.dsp.rmvpe import load_rmvpe_net
    from rvcd.dsp.safe_load import ModelFileError

    if path.is_file():
        try:
            shape = load_rmvpe_net(path).shape
            return {"kind": "RMVPE pitch model (engine.rmvpe, --rmvpe)", **asdict(shape)}
        except ModelFileError:
            pass
    try:
        encoder = load_content_encoder(path)
    except (ModelFileError, OSError, ValueError):
        return None
    cfg = encoder.cfg
    return {
        "kind": "content encoder, HuBERT/ContentVec (engine.hubert, --hubert)",
        "layers": len(encoder.layers),
        "hidden_size": cfg.hidden_size,
        "final_proj": cfg.final_dim or "none",
        "serves v1 models": "no: " + m if (m := encoder.mismatch("v1", 256)) else "yes",
        "serves v2 models": "no: " + m if (m := encoder.mismatch("v2", 768)) else "yes",
    }


def _cmd_inspect(args: argparse.Namespace) -> int:
    from rvcd.dsp.safe_load import ModelFileError
    from rvcd.dsp.voice_model import read_voice_checkpoint

    path = Path(args.model)
    try:
        weights, meta, _ = read_voice_checkpoint(path)
    except ModelFileError:
        other = _other_model(path)
        if other is None:
            raise
        report = {"path": str(path), **other}
        print(
            json.dumps(report, indent=2)
            if args.json
            else "\n".join(f"{k + ':':13} {v}" for k, v in report.items())
        )
        return EXIT_OK
    n_params = sum(int(t.numel()) for k, t in weights.items() if not k.startswith("enc_q."))
    report = {**meta.as_dict(), "n_parameters": n_params, "file_bytes": path.stat().st_size}
    if args.json:
        print(json.dumps({"kind": "RVC voice model", **report}, indent=2))
        return EXIT_OK
    print(f"file:         {report['path']} ({report['file_bytes'] / 1e6:.1f} MB)")
    print("kind:         RVC voice model")
    print(f"version:      {report['version']} ({report['phone_dim']}-d content features)")
    print(f"sample rate:  {report['sample_rate']} Hz")
    print(f"pitch (f0):   {'yes' if report['f0'] else 'no'}")
    print(f"speakers:     {report['n_speakers']}")
    print(f"parameters:   {report['n_parameters']:,}")
    print(f"info:         {report['info'] or '-'}")
    return EXIT_OK


def _cmd_make_test_model(args: argparse.Namespace) -> int:
    from rvcd.dsp import test_models
    from rvcd.dsp.voice_model import PHONE_DIMS

    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rate = test_models.RATES[args.sr]
    steps: list[tuple[str, Callable[[], Path]]] = [
        (
            "voice model",
            lambda: test_models.write_voice_model(
                out / "voice.pth", args.version, rate, args.f0, args.size, args.speakers, args.seed
            ),
        ),
        (
            "content encoder",
            lambda: test_models.write_content_encoder(out / "hubert", args.size, args.version, args.seed),
        ),
        ("rmvpe", lambda: test_models.write_rmvpe(out / "rmvpe.pt", args.size, args.seed)),
        (
            "index",
            lambda: test_models.write_index(
                out / "voice.index", PHONE_DIMS[args.version], args.index_rows, args.seed
            ),
        ),
    ]
    for i, (what, make) in enumerate(steps, 1):
        print(f"[{i}/{len(steps)}] writing {what} ...", file=sys.stderr, flush=True)
        path = make()
        print(f"      {path}", file=sys.stderr)
    print(
        f"random-weight {args.version} {args.sr} {'f0' if args.f0 else 'no-f0'} test model in "
        f"{out}; try:\n  rvcd convert IN.wav OUT.wav --model {out / 'voice.pth'} "
        f"--hubert {out / 'hubert'} --index {out / 'voice.index'} --rmvpe {out / 'rmvpe.pt'}",
        file=sys.stderr,
    )
    return EXIT_OK


OUTPUT_FORMATS = {".wav": "WAV", ".flac": "FLAC", ".aif": "AIFF", ".aiff": "AIFF"}
"""Output suffixes and the 16-bit PCM container each names."""


def _check_output(out: Path, force: bool) -> Path:
    """The file `convert` may write: a new or regular file (a link is followed) with a
    known audio suffix, in an existing directory; anything else is refused."""
    if out.suffix.lower() not in OUTPUT_FORMATS:
        known = ", ".join(OUTPUT_FORMATS)
        raise CliError(f"{out}: unknown output format {out.suffix or '(no suffix)'!r}; use one of {known}")
    if out.is_symlink() and out.exists():
        out = out.resolve()
    if out.exists() or out.is_symlink():
        if not out.is_file():
            kind = "a directory" if out.is_dir() else "not a regular file (a device, pipe or socket?)"
            raise CliError(f"{out}: is {kind}; rvcd writes audio only to regular files")
        if not force:
            raise CliError(f"{out}: already exists (use --force to overwrite)")
    if not out.parent.is_dir():
        raise CliError(f"{out.parent}: output directory does not exist")
    return out


RVC_ONLY_DEFAULTS: dict[str, Any] = {
    "index": None,
    "hubert": None,
    "rmvpe": None,
    "speaker": 0,
    "index_rate": 0.75,
    "protect": 0.33,
    "precision": DEFAULT_PRECISION,
}
"""`convert` options only the RVC engine uses, with their defaults: left unset by argparse
so that giving one to the WORLD engine can be refused instead of silently ignored."""


def _check_convert_args(args: argparse.Namespace) -> Path:
    if args.engine == "world":
        given = [f"--{k.replace('_', '-')}" for k in RVC_ONLY_DEFAULTS if getattr(args, k) is not None]
        if args.f0_method not in (None, *WORLD_F0_METHODS):
            given.append(f"--f0-method {args.f0_method}")
        if given:
            args.parser.error(
                f"{', '.join(given)}: only the RVC engine uses this; the WORLD engine runs without "
                "--model (give --model and --hubert to convert with a voice model)"
            )
    for key, default in RVC_ONLY_DEFAULTS.items():
        if getattr(args, key) is None:
            setattr(args, key, default)
    out = _check_output(Path(args.output), args.force)
    if args.engine == "rvc" and args.model is None:
        raise CliError("--model is required for the rvc engine (or use --engine world)")
    if args.engine == "rvc" and args.hubert is None:
        raise CliError("--hubert is required: the content encoder (hubert_base.pt or an HF directory)")
    if args.offline and args.engine != "rvc":
        raise CliError("--offline is the whole-file RVC path; it needs --engine rvc")
    return out


def _write_atomically(out: Path, audio: Any, rate: int) -> None:
    """Write the converted audio to `out` (checked again: it may have changed during the
    conversion) without ever leaving a half-written file."""
    from rvcd.dsp.atomic_file import write_atomically
    from rvcd.dsp.audio_io import write_audio

    write_atomically(_check_output(out, force=True), lambda tmp: write_audio(tmp, audio, rate))


def _cmd_convert(args: argparse.Namespace) -> int:
    if args.engine is None:
        args.engine = "rvc" if args.model else "world"
    out = _check_convert_args(args)

    from tqdm import tqdm

    from rvcd.dsp.audio_io import read_audio, resample, to_mono

    data, rate = read_audio(args.input)
    audio = to_mono(data)
    method = args.f0_method or ("rmvpe" if args.rmvpe else "harvest")
    params = StreamParams(
        pitch=args.pitch,
        formant=args.formant,
        index_rate=args.index_rate,
        f0_method=method,
        speaker=args.speaker,
        gate=args.gate,
        rms_mix=args.rms_mix,
        protect=args.protect,
    )
    spec = EngineSpec(
        kind=args.engine,
        model=args.model,
        hubert=args.hubert,
        index=args.index,
        rmvpe=args.rmvpe,
        device=args.device,
        world_f0=method if method in ("dio", "harvest") else "dio",
        precision=args.precision,
    )
    engine = build_engine(spec)
    models = getattr(engine, "models", None)
    if models is not None:
        models.check_speaker(args.speaker)
        if not models.voice.f0 and (args.pitch or args.f0_method):
            args.parser.error(
                f"{args.model} takes no pitch (a no-f0 model): --pitch and --f0-method cannot change it"
            )
    with tqdm(
        total=1, unit="block", desc=f"converting {Path(args.input).name}", disable=None, file=sys.stderr
    ) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        if args.offline:
            from rvcd.dsp.pitch import SAMPLE_RATE, make_estimator
            from rvcd.dsp.rvc_offline import convert_offline
            from rvcd.dsp.rvc_window import RvcParams

            estimator = (
                make_estimator(method, args.rmvpe, args.device, spec.dtype()) if models.voice.f0 else None
            )
            rvc_params = RvcParams(args.pitch, args.index_rate, args.speaker, args.protect)
            converted = convert_offline(
                models, resample(audio, rate, SAMPLE_RATE), estimator, rvc_params, args.rms_mix, progress
            )
            out_rate = models.voice.sample_rate
        else:
            # The streamer works in 10 ms frames: a rate that is not a multiple of 100 Hz
            # streams at 48 kHz and comes back at the input's rate.
            stream_rate = rate if rate % 100 == 0 else 48000
            shape = StreamShape.from_seconds(stream_rate, args.block, args.crossfade, args.extra)
            converted = Streamer(engine, shape).run(resample(audio, rate, stream_rate), params, progress)
            converted = resample(converted, stream_rate, rate)
            out_rate = rate
    _write_atomically(out, converted, out_rate)
    print(f"wrote {out} ({len(converted) / out_rate:.2f} s at {out_rate} Hz)", file=sys.stderr)
    return EXIT_OK


def _cmd_bench(args: argparse.Namespace) -> int:
    import torch

    from rvcd.dsp.benchmark import bench_engine
    from rvcd.dsp.precision import describe as describe_precision

    torch.set_num_threads(args.threads)
    kinds = ["world", "rvc"] if args.engine == "all" else [args.engine]
    with tempfile.TemporaryDirectory() as tmp:
        model, hubert, rmvpe, index = args.model, args.hubert, args.rmvpe, args.index
        if "rvc" in kinds and model is None:
            from rvcd.dsp import test_models

            print(f"writing {args.size} random-weight test models (v2, 40k) ...", file=sys.stderr, flush=True)
            d = Path(tmp)
            model = test_models.write_voice_model(d / "voice.pth", "v2", 40000, True, args.size)
            hubert = test_models.write_content_encoder(d / "hubert", args.size, "v2")
            rmvpe = test_models.write_rmvpe(d / "rmvpe.pt", args.size)
        print(f"threads {args.threads}, graph rate {args.rate} Hz, {args.blocks} blocks after warm-up")
        print(describe_precision(args.precision, args.device))
        for kind in kinds:
            spec = EngineSpec(
                kind=kind,
                model=model,
                hubert=hubert,
                index=index,
                rmvpe=rmvpe,
                device=args.device,
                precision=args.precision,
            )
            engine = build_engine(spec)
            params = StreamParams(f0_method=args.f0_method, index_rate=0.75 if index else 0.0)
            result = bench_engine(
                engine, args.rate, args.block, args.crossfade, args.extra, args.blocks, params=params
            )
            print(result.line(), flush=True)
            if result.rtf >= 1:
                print(
                    f"  {kind}: slower than real time at block {args.block:g} s: try a longer --block, a "
                    f"shorter --extra ({args.extra:g} s now) or --precision bf16/fp16, or let `rvcd tune` "
                    "pick block, headroom and precision for this machine",
                    flush=True,
                )
    return EXIT_OK


def _cmd_tune(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from rvcd.daemon import tune
    from rvcd.dsp.precision import describe as describe_precision

    cfg = _load_config(args)
    if args.write is not None and args.write.exists() and not args.force:
        raise CliError(f"{args.write}: already exists (use --force to overwrite)")
    precisions = args.precision or tune.precisions_to_try(cfg)
    threads = cfg.engine.worker_threads()
    torch.set_num_threads(threads)
    print(f"{cfg.source}: engine {cfg.engine.kind}, extra {cfg.engine.extra} s, {threads} torch threads")
    print(describe_precision(cfg.engine.precision, cfg.engine.device))
    total = len(precisions) * len(tune.CANDIDATE_BLOCKS)
    with tqdm(total=total, unit="candidate", disable=None, file=sys.stderr) as bar:

        def progress(text: str) -> None:
            bar.set_description(text)
            bar.update(1)

        rows = tune.measure(cfg, precisions, margin=args.margin, n_blocks=args.blocks, progress=progress)
    chosen = tune.choose(rows)
    print(tune.table(rows, chosen))
    print(tune.summary(rows))
    if chosen is None:
        raise CliError(
            "no candidate block keeps up on this machine: use a smaller model, a GPU "
            "(engine.device: cuda) or a shorter engine.extra"
        )
    print(
        f"chosen: block {chosen.block} s, headroom {chosen.headroom:.3f} s, precision "
        f"{chosen.precision}: {1000 * chosen.latency:.0f} ms end to end (48 kHz, 256-sample periods)"
    )
    if args.write is not None:
        tune.write_config(cfg, chosen, args.write)
        print(f"wrote {args.write}")
    return EXIT_OK


def _defer_sighup(args: argparse.Namespace) -> None:
    """Until the daemon installs its own handlers, a SIGHUP (systemctl reload) must not
    kill it: note it in `args.early_reload` and reload once running. SIGTERM keeps its
    default (immediate) until then."""
    args.early_reload = []
    signal.signal(signal.SIGHUP, lambda signum, _frame: args.early_reload.append(signum))


def _cmd_run(args: argparse.Namespace) -> int:
    from rvcd.daemon.jack_io import JackUnavailableError
    from rvcd.daemon.logs import setup_logging
    from rvcd.daemon.nsm import ERR_GENERAL
    from rvcd.daemon.pw_jack import start_again_under_pw_jack
    from rvcd.daemon.service import Daemon, StartupInterrupted

    overrides = {
        key: value
        for key, value in (
            ("osc.port", args.port),
            ("jack.client_name", args.client_name),
            ("jack.server_name", args.server),
            ("jack.connect_inputs", args.connect_in),
            ("jack.connect_outputs", args.connect_out),
        )
        if value is not None
    }
    session = None
    if os.environ.get("NSM_URL"):
        session = _open_session(args, overrides)
    try:
        cfg = _load_config(args, overrides)
    except CliError as exc:
        if session is not None:
            session.client.error("/nsm/client/open", ERR_GENERAL, str(exc))
        raise
    setup_logging("debug" if args.verbose else cfg.log.level)
    why = "the NSM session" if session is not None else args.config_why
    log.info("configuration %s (%s)", cfg.source, why)
    if overrides:
        log.info(
            "command-line settings over %s: %s",
            cfg.source,
            ", ".join(f"{k}={v}" for k, v in overrides.items()),
        )
    if cfg.virtual_mic.enabled and session is None:  # a session manager's client keeps its pid
        start_again_under_pw_jack()
    daemon = Daemon(cfg)
    daemon.handle_signals()
    if getattr(args, "early_reload", None):
        log.info("a reload was requested while starting: reloading once running")
        daemon.request_reload()
    try:
        daemon.start()
    except StartupInterrupted:
        log.info("stop requested while starting")
        daemon.stop()
        return EXIT_OK
    except (JackUnavailableError, OSError) as exc:  # OscBindError names the port and osc.port
        daemon.stop()
        if session is not None:
            session.client.error("/nsm/client/open", ERR_GENERAL, str(exc))
        raise CliError(str(exc)) from exc
    if session is not None:
        session.daemon = daemon
        session.opened()
    return daemon.serve()


STATUS_TIMEOUT_S = 2.0
"""How long `rvcd status` waits for the daemon's answer."""


def _cmd_status(args: argparse.Namespace) -> int:
    """Print what the running daemon reports over OSC (/rvcd/status)."""
    import socket

    from pythonosc.osc_message import OscMessage
    from pythonosc.osc_message_builder import OscMessageBuilder

    cfg = _load_config(args, {"osc.port": args.port} if args.port is not None else None)
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(cfg.osc.bind, cfg.osc.bind)
    where = f"{host} port {cfg.osc.port}"
    if not cfg.osc.enabled:
        raise CliError(f"{cfg.source}: osc.enabled is false, so rvcd cannot be asked")
    if cfg.osc.port == 0:
        raise CliError("osc.port is 0 (any free port): give the port rvcd logged with --port")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        # Replies go to the sender, or to osc.reply_port when one is configured.
        try:
            sock.bind((host, cfg.osc.reply_port or 0))
        except OSError as exc:
            raise CliError(
                f"cannot listen for the answer on osc.reply_port {cfg.osc.reply_port}: {exc}"
            ) from exc
        sock.settimeout(args.timeout)
        sock.sendto(OscMessageBuilder("/rvcd/status").build().dgram, (host, cfg.osc.port))
        try:
            while (reply := OscMessage(sock.recv(65536))).address != "/rvcd/status":
                pass
        except (TimeoutError, ConnectionRefusedError):
            raise CliError(
                f"no answer from rvcd at {where} within {args.timeout:g} s: is it running "
                "(systemctl --user status rvcd), with this configuration (--config, --port)?"
            ) from None
    values = list(reply.params)
    status = dict(zip(values[::2], values[1::2], strict=False))
    if args.json:
        print(json.dumps(status, indent=2))
        return EXIT_OK
    width = max(len(key) for key in status)
    for key, value in status.items():
        shown = f"{value:.3f}".rstrip("0").rstrip(".") if isinstance(value, float) else value
        print(f"{key:<{width}}  {shown}")
    return EXIT_OK


def _open_session(args: argparse.Namespace, overrides: dict[str, Any]) -> Any:
    """Under a session manager ($NSM_URL): announce, wait for the session to open, and
    take the configuration and JACK client name from it (see `rvcd.daemon.nsm`)."""
    from rvcd.daemon.config_paths import packaged
    from rvcd.daemon.logs import setup_logging
    from rvcd.daemon.nsm import NsmClient, NsmError, SessionLink, session_config

    setup_logging("debug" if args.verbose else "info")
    try:
        client = NsmClient(os.environ["NSM_URL"], executable=Path(sys.argv[0]).name or "rvcd")
        path, display_name, client_id = client.announce()
    except (NsmError, OSError) as exc:
        raise CliError(f"session manager: {exc}") from exc
    log.info("NSM: opening session '%s' in %s as %s", display_name, path, client_id)
    config = session_config(path, packaged())
    args.config = config
    overrides["jack.client_name"] = client_id
    return SessionLink(client, None, config, packaged())


def _cmd_index_build(args: argparse.Namespace) -> int:
    """Build an IVF,Flat faiss index the way RVC's training does, from FEATURES: one
    .npy array [rows, dim] or a directory of them (RVC's 3_feature256/768)."""
    import numpy as np

    from rvcd.dsp.retrieval import build_index

    src = Path(args.features)
    if not src.exists():
        raise CliError(f"{src}: no such file or directory")
    files = sorted(src.glob("*.npy")) if src.is_dir() else [src]
    if not files:
        raise CliError(f"{src}: no .npy files in this directory (RVC writes them to 3_feature256/768)")
    if src.suffix.lower() != ".npy" and not src.is_dir():
        raise CliError(
            f"{src}: not a .npy feature array ({src.suffix or 'no suffix'}): the index is built from the "
            "content features RVC's training extracts (3_feature256/768/*.npy), not from audio"
        )
    out = Path(args.output)
    if out.exists() and not args.force:
        raise CliError(f"{out}: already exists (use --force to overwrite)")
    arrays = []
    for f in files:
        try:
            arr = np.load(f, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise CliError(f"{f}: not a numpy .npy array file ({exc})") from exc
        if arr.ndim != 2:
            raise CliError(f"{f}: features must be [rows, dim], got shape {arr.shape}")
        arrays.append(arr)
    dims = {a.shape[1] for a in arrays}
    if len(dims) != 1:
        raise CliError(f"{src}: feature files disagree on the width: {sorted(dims)}")
    feats = np.concatenate(arrays)
    try:
        build_index(feats, out, progress=lambda msg: print(msg, file=sys.stderr, flush=True))
    except ValueError as exc:
        raise CliError(f"{src}: {exc}") from exc
    print(f"wrote {out} ({feats.shape[0]} x {feats.shape[1]} features)", file=sys.stderr)
    return EXIT_OK


def _number(kind: type[int] | type[float], low: float, high: float) -> Callable[[str], Any]:
    """An argparse type: a finite `kind` within low..high, else a usage error saying so."""

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            what = "a whole number" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not math.isfinite(value) or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is outside {low:g}..{high:g}")
        return value

    return parse


def _param(name: str) -> Callable[[str], Any]:
    """The argparse type of conversion parameter `name` (its range from `RANGES`)."""
    return _number(float, *RANGES[name])


def _add_stream_shape_args(p: argparse.ArgumentParser) -> None:
    """--block/--crossfade/--extra with the defaults and ranges the configuration has."""
    for name, what in (
        ("block", "block length"),
        ("crossfade", "SOLA crossfade"),
        ("extra", "extra context per block"),
    ):
        lo, hi = SHAPE_RANGES[name]
        default = SHAPE_DEFAULTS[name]
        p.add_argument(
            f"--{name}",
            type=_number(float, lo, hi),
            default=default,
            help=f"{what}, seconds, {lo:g}..{hi:g} (default {default:g})",
        )


def _add_config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        type=Path,
        help=(
            "YAML configuration (default: $RVCD_CONFIG, else ~/.config/rvcd/config.yaml if it "
            "exists, else the packaged default: the WORLD engine)"
        ),
    )


def _load_config(args: argparse.Namespace, overrides: dict[str, Any] | None = None) -> Any:
    """The configuration `--config` or the search order names (see `config_paths`)."""
    from rvcd.daemon.config import ConfigError, load_config
    from rvcd.daemon.config_paths import find_config

    path, why = find_config(args.config)
    try:
        cfg = load_config(path, overrides)
    except ConfigError as exc:
        raise CliError(str(exc)) from exc
    log.debug("configuration %s (%s)", path, why)
    args.config_why = why
    return cfg


def _cmd_config_init(args: argparse.Namespace) -> int:
    """Write a copy of the packaged default configuration (the WORLD engine), or with
    --rvc the RVC example with every key explained, or with --streaming the PipeWire
    virtual-microphone set-up, to PATH (default ~/.config/rvcd/config.yaml, which
    `rvcd run` then finds by itself)."""
    from rvcd.daemon.config_paths import packaged, user_config

    out = Path(args.path) if args.path else user_config()
    source = packaged(
        "rvc-example.yaml" if args.rvc else "streaming.yaml" if args.streaming else "default.yaml"
    )
    if out.exists() and not args.force:
        raise CliError(f"{out}: already exists (use --force to overwrite)")
    if out.exists() and not out.is_file():
        raise CliError(f"{out}: is not a regular file")
    out.parent.mkdir(parents=True, exist_ok=True)
    text = source.read_text()
    if args.rvc:  # relative to the copy the example's ../models would point nowhere useful
        text = text.replace("../models", "~/rvc-models")
    out.write_text(text)
    print(f"wrote {out} (a copy of {source.name}); edit it, then: rvcd run --config {out}", file=sys.stderr)
    return EXIT_OK


def _add_precision_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=DEFAULT_PRECISION,
        help=(
            "network precision (default auto: bf16 on a CPU with AMX or AVX512-BF16, fp16 on "
            "CUDA, else fp32; fp32 is the exact path)"
        ),
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="rvcd",
        description=(
            "Real-time RVC voice conversion for JACK/PipeWire, driven over OSC.\n\n"
            "Start with `rvcd make-test-model DIR` to get random-weight models in the real\n"
            "formats, `rvcd inspect MODEL.pth` to see what a voice model is, and\n"
            "`rvcd convert IN.wav OUT.wav --model M --hubert H` to convert a file.\n"
            "On a PipeWire desktop, `rvcd config init --streaming && rvcd run` gives a\n"
            'microphone named "rvcd voice" that every application can pick.'
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    parser.add_argument("--version", action="version", version=f"rvcd {__version__}")
    # -v after the command too (`rvcd run -v`); SUPPRESS keeps a -v before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log debug details"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    class _Commands:
        """`add_parser` with the common options, recording each command's parser."""

        @staticmethod
        def add_parser(name: str, **kwargs: Any) -> argparse.ArgumentParser:
            p = commands.add_parser(name, parents=[common], **kwargs)
            p.set_defaults(parser=p)
            return p

    sub = _Commands()

    def action(
        group: Any, name: str, func: Callable[[argparse.Namespace], int], summary: str
    ) -> argparse.ArgumentParser:
        """An action of a command group (`rvcd index build`), with the common options;
        its description is `func`'s docstring."""
        p = group.add_parser(
            name,
            parents=[common],
            help=summary,
            description=inspect.cleandoc(func.__doc__ or summary),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.set_defaults(func=func, parser=p)
        return p

    p = sub.add_parser(
        "run",
        help="run the real-time daemon (JACK client + OSC control)",
        description=(
            "Run rvcd as a JACK client: ports <client>:in_N and out_N, the engine from the\n"
            "configuration (default: configs/default.yaml, the WORLD engine, no model needed).\n"
            "SIGHUP re-reads the configuration (a bad file keeps the running one);\n"
            "SIGTERM/SIGINT stop cleanly. A JACK server must be running (jackd or PipeWire)."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_config_arg(p)
    p.add_argument(
        "--port", type=_number(int, 0, 65535), help="OSC port for this run (osc.port; 0 = any free)"
    )
    p.add_argument("--client-name", help="JACK client name for this run (jack.client_name)")
    p.add_argument("--server", help="JACK server name for this run (jack.server_name)")
    p.add_argument(
        "--connect-in",
        action="append",
        metavar="PORT",
        help="connect this JACK output port (regex) to in_1, repeat for in_2... (jack.connect_inputs)",
    )
    p.add_argument(
        "--connect-out",
        action="append",
        metavar="PORT",
        help="connect out_1 to this JACK input port (regex), repeat for out_2... (jack.connect_outputs)",
    )
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser(
        "status",
        help="ask a running rvcd what it is doing",
        description=(
            "Ask the running daemon over OSC (/rvcd/status, at the configuration's osc.bind and\n"
            "osc.port) and print every parameter, the engine and model, latency, load, block\n"
            "times, xruns, underruns and other counters, and the virtual microphone (its\n"
            "PipeWire name and whether rvcd's outputs feed it)."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_config_arg(p)
    p.add_argument("--port", type=_number(int, 1, 65535), help="the daemon's OSC port (default osc.port)")
    p.add_argument(
        "--timeout",
        type=_number(float, 0.1, 60.0),
        default=STATUS_TIMEOUT_S,
        help=f"seconds to wait for the answer (default {STATUS_TIMEOUT_S:g})",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of aligned lines")
    p.set_defaults(func=_cmd_status)

    p = sub.add_parser(
        "inspect",
        help="show what a model file is (voice model, rmvpe or content encoder)",
        description=(
            "Read an RVC voice .pth, an rmvpe.pt or a content encoder (hubert_base.pt or an HF\n"
            "directory) safely (no code in it runs) and report what it is."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", help="model file (.pth, .pt) or content encoder directory")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=_cmd_inspect)

    p = sub.add_parser(
        "make-test-model",
        help="write random-weight models in the real formats (for demos and tests)",
        description=(
            "Write OUT_DIR/voice.pth (RVC voice model), OUT_DIR/hubert/ (HF content\n"
            "encoder), OUT_DIR/rmvpe.pt and OUT_DIR/voice.index, all with random weights\n"
            "but in the exact formats real models use. --size full writes the real sizes\n"
            "(HuBERT base, RVC's configs) for benchmarks; tiny keeps them small."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("out_dir", help="directory to write into (created if missing)")
    p.add_argument("--version", choices=["v1", "v2"], default="v2", help="RVC version (default v2)")
    p.add_argument("--sr", choices=["32k", "40k", "48k"], default="40k", help="model rate (default 40k)")
    p.add_argument(
        "--f0", action=argparse.BooleanOptionalAction, default=True, help="pitch-guided model (default yes)"
    )
    p.add_argument(
        "--size",
        choices=["tiny", "full"],
        default="tiny",
        help="network size (default tiny: small files for trying things; full = real sizes, ~750 MB)",
    )
    p.add_argument("--speakers", type=_number(int, 1, 1000), default=4, help="number of speakers (default 4)")
    p.add_argument(
        "--index-rows", type=_number(int, 1, 10**7), default=2000, help="vectors in the index (default 2000)"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.set_defaults(func=_cmd_make_test_model)

    p = sub.add_parser(
        "convert",
        help="convert an audio file, block by block as the live daemon does",
        description=(
            "Convert IN (any rate, any channel count; mixed to mono) and write OUT as 16-bit\n"
            "WAV. By default the file goes through the same block streamer as the live\n"
            "daemon (output at the input's rate, aligned with the input); --offline runs\n"
            "RVC's whole-file path instead (output at the model's rate). Without --model\n"
            "the WORLD engine shifts pitch and formants with no model at all."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", help="input audio file (wav, flac, ogg, ...)")
    p.add_argument("output", help="output WAV file")
    p.add_argument(
        "--engine", choices=ENGINE_KINDS, help="conversion engine (default rvc with --model, else world)"
    )
    p.add_argument("--model", type=Path, help="voice model (.pth)")
    p.add_argument(
        "--hubert", type=Path, help="content encoder: hubert_base.pt or an HF ContentVec directory"
    )
    p.add_argument("--index", type=Path, help="faiss retrieval index (.index) built for this model")
    p.add_argument("--rmvpe", type=Path, help="rmvpe.pt, needed by --f0-method rmvpe")
    p.add_argument(
        "--f0-method",
        choices=["rmvpe", "fcpe", "crepe", "crepe-tiny", "harvest", "dio", "pm"],
        help="pitch estimator (default rmvpe when --rmvpe is given, else harvest)",
    )
    for name, default, what in (
        ("pitch", 0.0, "pitch shift, semitones"),
        ("formant", 0.0, "formant shift, semitones"),
        ("index_rate", RVC_ONLY_DEFAULTS["index_rate"], "retrieval blend"),
        (
            "protect",
            RVC_ONLY_DEFAULTS["protect"],
            "offline path: raw features kept in unvoiced frames (0.5 = off)",
        ),
        ("rms_mix", 1.0, "loudness envelope: 0 = the input's, 1 = the converted voice's own"),
        ("gate", GATE_OFF_DB, f"input gate threshold, dBFS ({GATE_OFF_DB:g} = off)"),
    ):
        lo, hi = RANGES[name]
        p.add_argument(
            f"--{name.replace('_', '-')}",
            type=_param(name),
            default=None if name in RVC_ONLY_DEFAULTS else default,
            help=f"{what}, {lo:g}..{hi:g} (default {default:g})",
        )
    p.add_argument("--speaker", type=_number(int, 0, MAX_SPEAKER), help="speaker id (default 0)")
    _add_stream_shape_args(p)
    p.add_argument("--offline", action="store_true", help="RVC's whole-file path instead of the streamer")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    _add_precision_arg(p)
    p.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    p.set_defaults(func=_cmd_convert, precision=None)

    p = sub.add_parser(
        "bench",
        help="measure per-stage milliseconds and the real-time factor",
        description=(
            "Stream a voice-like test signal through the engines and print the median\n"
            "milliseconds per block for each stage and the real-time factor (processing\n"
            "time / block duration; below 1 keeps up). Without --model the RVC engine runs\n"
            "random-weight test models of --size (full = real sizes)."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--engine", choices=[*ENGINE_KINDS, "all"], default="all", help="engine(s) to measure")
    p.add_argument("--model", type=Path, help="voice model (default: random test model)")
    p.add_argument("--hubert", type=Path, help="content encoder for --model")
    p.add_argument("--index", type=Path, help="retrieval index for --model")
    p.add_argument("--rmvpe", type=Path, help="rmvpe.pt for --model")
    p.add_argument(
        "--size",
        choices=["tiny", "full"],
        default="full",
        help="test model size (default full: timing needs real sizes; tiny only checks the plumbing)",
    )
    p.add_argument("--f0-method", default="rmvpe", help="pitch estimator of the RVC engine (default rmvpe)")
    p.add_argument(
        "--rate",
        type=_number(int, MIN_AUDIO_RATE, MAX_AUDIO_RATE),
        default=48000,
        help="graph sample rate, Hz (default 48000)",
    )
    _add_stream_shape_args(p)
    p.add_argument(
        "--blocks",
        type=_number(int, 1, 100000),
        default=20,
        help="measured blocks after 3 warm-up blocks (default 20)",
    )
    p.add_argument(
        "--threads",
        type=_number(int, 1, 1024),
        default=os.cpu_count() or 1,
        help="torch threads (default: cores)",
    )
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    _add_precision_arg(p)
    p.set_defaults(func=_cmd_bench)

    p = sub.add_parser(
        "tune",
        help="measure this machine and pick block, headroom and precision",
        description=(
            "Stream a voice-like signal through the configured engine and model for\n"
            "candidate blocks (0.05-1.0 s) and precisions, print p50/p99 block times and\n"
            "the end-to-end latency each choice gives, and choose the lowest latency whose\n"
            "p99 plus the safety margin fits in the block. --write saves a copy of the\n"
            "configuration with engine.block, crossfade, headroom and precision set.\n"
            "Run it once on the machine that will run the daemon, before going live."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_config_arg(p)
    p.add_argument("--write", type=Path, metavar="OUT", help="write the tuned configuration to OUT")
    p.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    p.add_argument(
        "--precision",
        choices=[x for x in PRECISIONS if x != "auto"],
        action="append",
        help="precision to try; repeat for several (default: the configured one, and fp32)",
    )
    p.add_argument(
        "--margin",
        type=_number(float, 0.0, 10.0),
        default=TUNE_MARGIN,
        help=f"safety margin: headroom = p99 x (1 + margin) (default {TUNE_MARGIN})",
    )
    p.add_argument(
        "--blocks",
        type=_number(int, 1, 100000),
        default=12,
        help="measured blocks per candidate (default 12)",
    )
    p.set_defaults(func=_cmd_tune)

    p = sub.add_parser("config", help="configuration files")
    csub = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    c = action(csub, "init", _cmd_config_init, "write an annotated configuration to edit")
    c.add_argument("path", nargs="?", help="where to write (default ~/.config/rvcd/config.yaml)")
    kind = c.add_mutually_exclusive_group()
    kind.add_argument(
        "--rvc", action="store_true", help="the RVC example with every key instead of the default"
    )
    kind.add_argument(
        "--streaming",
        action="store_true",
        help="a virtual microphone for every application (PipeWire), a monitor and a limiter",
    )
    c.add_argument("--force", action="store_true", help="overwrite PATH if it exists")

    p = sub.add_parser("index", help="retrieval index tools")
    isub = p.add_subparsers(dest="index_command", metavar="ACTION", required=True)
    b = action(isub, "build", _cmd_index_build, "build a faiss index from content features")
    b.add_argument("features", help=".npy file or directory of .npy files")
    b.add_argument("output", help="index file to write")
    b.add_argument("--force", action="store_true", help="overwrite OUTPUT if it exists")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:
        parser.print_help()
        return EXIT_OK
    args, extras = parser.parse_known_args(argv)
    if extras:
        getattr(args, "parser", parser).error(f"unrecognized arguments: {' '.join(extras)}")
    if args.func is _cmd_run:
        _defer_sighup(args)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # faiss announces at INFO which CPU build it loaded; that is noise to a user.
    logging.getLogger("faiss").setLevel(logging.WARNING)
    from rvcd.dsp.safe_load import ModelFileError

    try:
        return int(args.func(args))
    except (CliError, ModelFileError, FileNotFoundError, ValueError) as exc:
        print(f"rvcd: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("rvcd: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
