"""The RVC engine through the streamer: pitch follows the shift, formant keeps the pitch,
block joins are seamless, and retrieval and speakers change between blocks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_streamer import RATE, _max_jump, _median_f0, _tone

from rvcd.dsp.engine_rvc import RvcEngine
from rvcd.dsp.rvc_window import RvcModels
from rvcd.dsp.stream_params import StreamParams
from rvcd.dsp.streamer import Streamer, StreamShape


@pytest.fixture(scope="module")
def engine_factory(tiny_models):
    def make(f0=True):
        d = tiny_models("v2", 40000, f0)
        models = RvcModels.load(d / "voice.pth", d / "hubert", d / "voice.index")
        return RvcEngine(models, d / "rmvpe.pt")

    return make


SHAPE = StreamShape.from_seconds(RATE, 0.2, 0.04, 0.5)


@pytest.mark.parametrize(("pitch", "formant", "ratio"), [(0, 0, 1.0), (12, 0, 2.0), (0, 5, 1.0)])
def test_streamed_rvc_pitch(engine_factory, pitch, formant, ratio):
    x = _tone(150.0, 2.0)
    y = Streamer(engine_factory(), SHAPE).run(x, StreamParams(pitch=pitch, formant=formant, f0_method="pm"))
    assert np.isfinite(y).all()
    assert _median_f0(y[RATE // 2 :]) / 150.0 == pytest.approx(ratio, rel=0.03)


@pytest.mark.parametrize("f0", [True, False])
def test_streamed_rvc_joins_are_seamless(engine_factory, f0):
    x = _tone(150.0, 2.5)
    y = Streamer(engine_factory(f0), SHAPE).run(x, StreamParams(f0_method="pm", index_rate=0.5))[RATE // 2 :]
    joins = np.arange(SHAPE.block, len(y), SHAPE.block) - (RATE // 2 - SHAPE.latency) % SHAPE.block
    at_joins, anywhere = _max_jump(y, joins[joins > 0])
    assert at_joins <= anywhere


def test_parameters_change_between_blocks(engine_factory):
    x = _tone(150.0, 2.0)
    streamer = Streamer(engine_factory(), SHAPE)
    out = []
    for i in range(len(x) // SHAPE.block):
        params = StreamParams(f0_method="pm" if i < 5 else "rmvpe", speaker=i % 4, index_rate=(i % 3) / 2)
        out.append(streamer.process(x[i * SHAPE.block : (i + 1) * SHAPE.block], params))
    y = np.concatenate(out)
    assert np.isfinite(y).all() and np.abs(y).max() > 0.01


def test_unknown_speaker_is_refused(engine_factory):
    streamer = Streamer(engine_factory(), SHAPE)
    with pytest.raises(ValueError, match="speaker 7"):
        streamer.process(np.zeros(SHAPE.block, dtype=np.float32), StreamParams(speaker=7, f0_method="pm"))


def test_a_swapped_in_model_converts_as_if_it_had_run_all_along(engine_factory, tiny_models):
    """The input side (16 kHz window, pitch cache) carries over a swap, and rmvpe is not
    loaded again: the first block the new model converts equals that of a stream that
    used the new model from the start."""
    d = tiny_models("v2", 48000, True)
    params = StreamParams(f0_method="rmvpe")
    x = _tone(150.0, 2.0)
    blocks = [x[i * SHAPE.block : (i + 1) * SHAPE.block] for i in range(len(x) // SHAPE.block)]
    old = engine_factory()
    swapped = Streamer(old, SHAPE)
    reference = Streamer(RvcEngine(RvcModels.load(d / "voice.pth", d / "hubert"), d / "rmvpe.pt"), SHAPE)
    for block in blocks[:6]:
        swapped.process(block, params)
        reference.process(block, params)
    new = old.successor(RvcModels.load(d / "voice.pth", d / "hubert"), old.rmvpe_path, "cpu")
    swapped.replace_engine(new, params)
    assert new.estimator("rmvpe") is old.estimator("rmvpe")
    for streamer in (swapped, reference):
        streamer.window[: -SHAPE.block] = streamer.window[SHAPE.block :]
        streamer.window[-SHAPE.block :] = blocks[6]
    torch.manual_seed(0)  # the NSF source draws noise
    got = swapped.engine.convert(swapped.window, params, {})
    torch.manual_seed(0)
    want = reference.engine.convert(reference.window, params, {})
    np.testing.assert_allclose(got, want, atol=1e-6)
