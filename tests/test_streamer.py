"""The block streamer: alignment, seamless joins, latency, parameter changes, WORLD engine."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import chirp, lfilter

from rvcd.dsp.audio_io import resample
from rvcd.dsp.benchmark import voice_like_signal
from rvcd.dsp.engine_world import WorldEngine
from rvcd.dsp.pitch import make_estimator
from rvcd.dsp.stream_params import StreamParams
from rvcd.dsp.streamer import Streamer, StreamShape

RATE = 48000
_FIR = np.hanning(31) / np.hanning(31).sum()


class FilterEngine:
    """A linear, time-invariant engine (31-tap low-pass): streaming it must give exactly
    what filtering the whole signal gives."""

    name = "fir"

    def prepare(self, rate, window, tail, block):
        self.tail = tail

    def reset(self):
        pass

    def convert(self, window, params, timings):
        return lfilter(_FIR, [1.0], window)[-self.tail :].astype(np.float32)


def _shape(block=0.1, crossfade=0.02, extra=0.1):
    return StreamShape.from_seconds(RATE, block, crossfade, extra)


def _sweep(seconds=2.0, top=2000.0):
    t = np.arange(int(RATE * seconds)) / RATE
    return (0.5 * chirp(t, 100, seconds, top, method="logarithmic")).astype(np.float32)


def _joins(shape, n):
    return np.arange(shape.block, n, shape.block) - shape.latency


def _max_jump(y, positions):
    d = np.abs(np.diff(y))
    at = [d[p - 2 : p + 2].max() for p in positions if 2 <= p < len(d) - 2]
    return max(at), d.max()


@pytest.mark.parametrize("signal", ["sweep", "speech"])
def test_streamed_linear_engine_equals_whole_signal(signal):
    x = _sweep() if signal == "sweep" else voice_like_signal(RATE, 2.0)
    shape = _shape()
    y = Streamer(FilterEngine(), shape).run(x, StreamParams())
    whole = lfilter(_FIR, [1.0], x)
    np.testing.assert_allclose(y, whole, atol=1e-5)


def test_shape_is_whole_10ms_frames_and_latency_is_crossfade_plus_search():
    s = StreamShape.from_seconds(44100, 0.2513, 0.05, 2.5)
    assert s.block % s.zc == 0 and s.crossfade % s.zc == 0 and s.extra % s.zc == 0
    assert s.window == s.extra + s.crossfade + s.search + s.block
    assert s.latency == s.crossfade + s.search == 2205 + 441
    with pytest.raises(ValueError, match="multiple of 100"):
        StreamShape.from_seconds(44123, 0.25, 0.05, 0.5)


@pytest.mark.parametrize("bypass", [True, False])
def test_impulse_delay_equals_reported_latency(bypass):
    shape = _shape()
    streamer = Streamer(FilterEngine(), shape)
    n = 6 * shape.block
    x = np.zeros(n, dtype=np.float32)
    at = 3 * shape.block + 123
    x[at] = 1.0
    out = np.concatenate(
        [
            streamer.process(x[i : i + shape.block], StreamParams(bypass=bypass))
            for i in range(0, n, shape.block)
        ]
    )
    peak = int(np.argmax(np.abs(out)))
    fir_delay = 0 if bypass else len(_FIR) // 2
    assert peak - at - fir_delay == streamer.latency


def test_bypass_is_bit_exact_and_switching_is_click_free():
    x = _sweep()
    shape = _shape()
    assert np.array_equal(Streamer(WorldEngine(), shape).run(x, StreamParams(bypass=True)), x)
    streamer = Streamer(WorldEngine(), shape)
    padded = np.concatenate([x, np.zeros(shape.latency + shape.block, dtype=np.float32)])
    out = []
    for i in range(len(x) // shape.block):
        params = StreamParams(pitch=3, bypass=(i // 4) % 2 == 1)
        out.append(streamer.process(padded[i * shape.block : (i + 1) * shape.block], params))
    y = np.concatenate(out)
    jump_at_switch, jump_anywhere = _max_jump(y, np.arange(4, len(out), 4) * shape.block)
    assert jump_at_switch <= 1.05 * jump_anywhere
    assert jump_at_switch < 0.1


@pytest.mark.parametrize("signal", ["sweep", "speech"])
def test_world_stream_has_no_discontinuity_at_block_joins(signal):
    x = _sweep() if signal == "sweep" else voice_like_signal(RATE, 2.0)
    shape = _shape()
    y = Streamer(WorldEngine(), shape).run(x, StreamParams(pitch=4))
    steady = y[shape.block * 2 :]
    at_joins, anywhere = _max_jump(steady, _joins(shape, len(y))[2:] - 2 * shape.block)
    assert at_joins <= anywhere


def _median_f0(y, rate=RATE):
    f0 = make_estimator("pm")(resample(y, rate, 16000))
    return float(np.median(f0[f0 > 0]))


def _tone(f0=160.0, seconds=1.5):
    t = np.arange(int(RATE * seconds)) / RATE
    rng = np.random.default_rng(0)
    return (
        sum(0.3 / k * np.sin(2 * np.pi * k * f0 * t) for k in range(1, 6))
        + 0.002 * rng.standard_normal(len(t))
    ).astype(np.float32)


@pytest.mark.parametrize(("semitones", "ratio"), [(12, 2.0), (-12, 0.5), (7, 2 ** (7 / 12))])
def test_world_pitch_shift_is_measured(semitones, ratio):
    x = _tone()
    y = Streamer(WorldEngine(), _shape()).run(x, StreamParams(pitch=semitones))
    assert _median_f0(y[RATE // 5 :]) / _median_f0(x) == pytest.approx(ratio, rel=0.02)


def _envelope_peak_hz(y):
    """Frequency of the spectral envelope's maximum (smoothed log spectrum), Hz."""
    spec = np.abs(np.fft.rfft(y[: 1 << 15] * np.hanning(1 << 15)))
    smooth = np.convolve(np.log(spec + 1e-9), np.ones(301) / 301, mode="same")
    freqs = np.fft.rfftfreq(1 << 15, 1 / RATE)
    band = (freqs > 200) & (freqs < 5000)
    return float(freqs[band][np.argmax(smooth[band])])


def _vowel(seconds: float = 1.5) -> np.ndarray:
    """A vowel-like source: a 120 Hz pulse train through a resonance at 1 kHz."""
    t = np.arange(int(RATE * seconds)) / RATE
    pulses = (np.sin(2 * np.pi * 120 * t) > 0.999).astype(np.float64)
    r, theta = 0.995, 2 * np.pi * 1000 / RATE
    x = lfilter([1.0], [1.0, -2 * r * np.cos(theta), r * r], pulses)
    noise = 0.001 * np.random.default_rng(0).standard_normal(len(t))
    return (0.3 * x / np.abs(x).max() + noise).astype(np.float32)


def test_world_formant_shift_moves_the_envelope_not_the_pitch():
    x = _vowel()
    base = Streamer(WorldEngine(), _shape()).run(x, StreamParams())
    up = Streamer(WorldEngine(), _shape()).run(x, StreamParams(formant=7))
    assert _envelope_peak_hz(up[RATE // 5 :]) / _envelope_peak_hz(base[RATE // 5 :]) == pytest.approx(
        2 ** (7 / 12), rel=0.1
    )
    assert _median_f0(up[RATE // 5 :]) == pytest.approx(_median_f0(base[RATE // 5 :]), rel=0.02)


def test_pitch_change_between_blocks_is_click_free():
    x = _tone(seconds=2.0)
    shape = _shape()
    streamer = Streamer(WorldEngine(), shape)
    out = []
    for i in range(len(x) // shape.block):
        out.append(
            streamer.process(
                x[i * shape.block : (i + 1) * shape.block], StreamParams(pitch=0 if i < 10 else 5)
            )
        )
    y = np.concatenate(out)[3 * shape.block :]
    at_change, anywhere = _max_jump(y, [7 * shape.block])
    assert at_change <= anywhere


def test_gate_mutes_quiet_input():
    x = _tone(seconds=1.0) * 0.001
    y = Streamer(WorldEngine(), _shape()).run(x, StreamParams(gate=-40))
    assert np.abs(y).max() < 1e-6
    loud = Streamer(WorldEngine(), _shape()).run(_tone(seconds=1.0), StreamParams(gate=-40))
    assert np.abs(loud[RATE // 5 :]).max() > 0.1


def test_rms_mix_follows_the_input_envelope():
    x = _tone(seconds=1.5)
    x[RATE // 2 : RATE] *= 0.1
    y = Streamer(WorldEngine(), _shape()).run(x, StreamParams(rms_mix=0.0))
    loud = np.sqrt(np.mean(y[int(0.25 * RATE) : int(0.45 * RATE)] ** 2))
    quiet = np.sqrt(np.mean(y[int(0.6 * RATE) : int(0.9 * RATE)] ** 2))
    assert 20 * np.log10(loud / quiet) == pytest.approx(20.0, abs=3.0)


def test_wrong_block_size_is_refused():
    streamer = Streamer(WorldEngine(), _shape())
    with pytest.raises(ValueError, match="block of 4800"):
        streamer.process(np.zeros(100, dtype=np.float32), StreamParams())


def _log_spectrogram(y: np.ndarray, n: int = 2048, hop: int = 1024) -> np.ndarray:
    frames = np.lib.stride_tricks.sliding_window_view(y, n)[::hop] * np.hanning(n)
    return 20 * np.log10(np.abs(np.fft.rfft(frames, axis=1)) + 1e-6)


@pytest.mark.parametrize("signal", ["sweep", "speech"])
def test_world_stream_matches_the_whole_window_conversion(signal):
    """Streamed WORLD output has the spectrum of converting the whole signal at once
    (waveforms differ: WORLD's resynthesis phase is not tied to the input's). The sweep
    stays inside WORLD's f0 range (up to 1100 Hz after the shift): above it WORLD
    resynthesises noise, whose spectrum differs between any two runs."""
    x = _sweep(top=800.0) if signal == "sweep" else voice_like_signal(RATE, 2.0)
    params = StreamParams(pitch=3)
    streamed = Streamer(WorldEngine(), _shape()).run(x, params)
    whole_engine = WorldEngine()
    whole_engine.prepare(RATE, len(x), len(x), len(x))
    whole = whole_engine.convert(x, params, {})
    a, b = _log_spectrogram(streamed[RATE // 10 :]), _log_spectrogram(whole[RATE // 10 :])
    loud = b.max(axis=1) > b.max() - 40
    bins = slice(10, 400)  # 230 Hz .. 9.4 kHz at 48 kHz
    diff = np.abs(a[loud][:, bins] - b[loud][:, bins])
    weights = 10 ** (b[loud][:, bins] / 20)
    assert np.average(diff, weights=weights) < 3.0, "streamed and whole-window spectra differ by > 3 dB"
