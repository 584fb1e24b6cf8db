"""faiss retrieval: real index files, RVC's weighting and blending, clear dimension errors."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from rvcd.daemon.cli import main
from rvcd.dsp.retrieval import RetrievalIndex, build_index, ivf_lists
from rvcd.dsp.safe_load import ModelFileError


@pytest.fixture()
def vectors():
    return np.random.default_rng(1).standard_normal((3000, 16)).astype(np.float32)


def test_built_index_is_ivf_flat_with_rvc_list_count(tmp_path, vectors):
    build_index(vectors, tmp_path / "a.index")
    index = faiss.read_index(str(tmp_path / "a.index"))
    ivf = faiss.extract_index_ivf(index)
    assert ivf.nlist == ivf_lists(3000) == min(int(16 * np.sqrt(3000)), 3000 // 39)
    assert ivf.nprobe == 1
    assert index.ntotal == 3000


def test_exact_neighbour_dominates_retrieval(tmp_path, vectors):
    faiss.write_index(_flat(vectors), str(tmp_path / "flat.index"))
    idx = RetrievalIndex.load(tmp_path / "flat.index", expected_dim=16)
    query = vectors[:5] + 1e-4
    np.testing.assert_allclose(idx.retrieve(query), vectors[:5], atol=1e-3)


def test_weights_are_inverse_square_distance(tmp_path):
    base = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 3.0]], dtype=np.float32)
    faiss.write_index(_flat(base), str(tmp_path / "three.index"))
    idx = RetrievalIndex.load(tmp_path / "three.index")
    query = np.array([[0.5, 0.0]], dtype=np.float32)
    # faiss returns squared L2 distances d: 0.25, 0.25, 9.25; RVC weights 1/d^2.
    d = np.array([0.25, 0.25, 9.25])
    w = (1 / d**2) / (1 / d**2).sum()
    want = (base[[0, 1, 2]] * w[:, None]).sum(axis=0)
    np.testing.assert_allclose(idx.retrieve(query)[0], want, rtol=1e-4)


def test_index_rate_blends_linearly(tmp_path, vectors):
    faiss.write_index(_flat(vectors), str(tmp_path / "flat.index"))
    idx = RetrievalIndex.load(tmp_path / "flat.index")
    q = np.random.default_rng(2).standard_normal((4, 16)).astype(np.float32)
    r = idx.retrieve(q)
    np.testing.assert_array_equal(idx.blend(q, 0.0), q)
    np.testing.assert_allclose(idx.blend(q, 1.0), r, atol=1e-6)
    np.testing.assert_allclose(idx.blend(q, 0.25), 0.25 * r + 0.75 * q, atol=1e-6)


def test_dimension_mismatch_names_both_widths(tmp_path, vectors):
    build_index(vectors, tmp_path / "a.index")
    with pytest.raises(ModelFileError, match="16-d.*768-d"):
        RetrievalIndex.load(tmp_path / "a.index", expected_dim=768)


def test_garbage_index_is_refused(tmp_path):
    (tmp_path / "bad.index").write_bytes(b"not an index at all" * 10)
    with pytest.raises(ModelFileError, match="not a faiss index"):
        RetrievalIndex.load(tmp_path / "bad.index")


def test_cli_index_build(tmp_path, vectors, capsys):
    np.save(tmp_path / "feats.npy", vectors)
    assert main(["index", "build", str(tmp_path / "feats.npy"), str(tmp_path / "out.index")]) == 0
    assert RetrievalIndex.load(tmp_path / "out.index", expected_dim=16).size == 3000
    assert main(["index", "build", str(tmp_path / "feats.npy"), str(tmp_path / "out.index")]) == 1
    assert "already exists" in capsys.readouterr().err


def test_cli_index_build_refuses_pickled_npy(tmp_path, capsys):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert main(["index", "build", str(tmp_path / "obj.npy"), str(tmp_path / "o.index")]) == 1
    assert "not a numpy .npy array" in capsys.readouterr().err


def _flat(vectors: np.ndarray) -> faiss.Index:
    index = faiss.IndexFlatL2(vectors.shape[1])
    index.add(vectors)
    return index
