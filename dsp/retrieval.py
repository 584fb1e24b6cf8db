"""faiss feature retrieval: pull content features towards the target speaker's own.

Reading and searching follow RVC's inference pipeline (RVC-Project WebUI
`infer/vc/pipeline.py`: k=8 neighbours, weights 1/distance^2 normalised, blended by
`index_rate`); building follows its `train/train_index.py` (IVF with
n_ivf = min(16*sqrt(N), N/39), nprobe 1, rows added in batches of 8192, k-means reduction
to 10,000 centroids above 200,000 rows).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np

from .safe_load import ModelFileError

log = logging.getLogger("rvcd.index")

NEIGHBOURS = 8
"""Neighbours blended per frame (reference value)."""
KMEANS_ABOVE_ROWS = 200_000
KMEANS_CENTROIDS = 10_000
ADD_BATCH_ROWS = 8192
_MIN_DISTANCE = 1e-12
"""Floor on squared distances so that an exact match gets a large finite weight, not inf."""


class RetrievalIndex:
    """A loaded faiss index and its stored vectors."""

    def __init__(self, index: faiss.Index, path: str) -> None:
        self.index = index
        self.path = path
        self.vectors = index.reconstruct_n(0, index.ntotal).astype(np.float32)

    @property
    def dim(self) -> int:
        return int(self.index.d)

    @property
    def size(self) -> int:
        return int(self.index.ntotal)

    @classmethod
    def load(cls, path: str | Path, expected_dim: int | None = None) -> RetrievalIndex:
        """Read a faiss `.index` file; `expected_dim` is the voice model's feature width."""
        path = Path(path)
        if not path.is_file():
            raise ModelFileError(f"{path}: no such index file")
        try:
            index = faiss.read_index(str(path))
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unreadable"
            raise ModelFileError(f"{path}: not a faiss index ({first})") from exc
        if index.ntotal == 0:
            raise ModelFileError(f"{path}: the index holds no vectors")
        if expected_dim is not None and index.d != expected_dim:
            raise ModelFileError(
                f"{path}: index vectors are {index.d}-d but the voice model takes "
                f"{expected_dim}-d features (v1 = 256, v2 = 768); use the index built for this model"
            )
        try:
            return cls(index, str(path))
        except RuntimeError as exc:
            raise ModelFileError(f"{path}: cannot read the stored vectors: {exc}") from exc

    def retrieve(self, feats: np.ndarray) -> np.ndarray:
        """For each row of `feats` [frames, dim], the 1/d^2-weighted mean of its neighbours."""
        feats = np.ascontiguousarray(feats, dtype=np.float32)
        k = min(NEIGHBOURS, self.size)
        dist, ix = self.index.search(feats, k)
        found = ix >= 0
        weight = np.where(found, 1.0 / np.square(np.maximum(dist, _MIN_DISTANCE)), 0.0)
        weight /= np.maximum(weight.sum(axis=1, keepdims=True), _MIN_DISTANCE)
        neighbours = self.vectors[np.where(found, ix, 0)]
        return np.sum(neighbours * weight[:, :, None], axis=1).astype(np.float32)

    def blend(self, feats: np.ndarray, index_rate: float) -> np.ndarray:
        """index_rate * retrieved + (1 - index_rate) * feats; index_rate in 0..1."""
        if index_rate <= 0:
            return feats
        return self.retrieve(feats) * index_rate + (1 - index_rate) * feats


def ivf_lists(rows: int) -> int:
    """Number of IVF lists RVC uses for `rows` training vectors."""
    return max(1, min(int(16 * math.sqrt(rows)), rows // 39))


def build_index(
    features: np.ndarray,
    out: str | Path,
    progress: Callable[[str], None] | None = None,
    seed: int = 0,
) -> faiss.Index:
    """Build an `IVF<n>,Flat` index from features [rows, dim] and write it to `out`."""
    feats = np.ascontiguousarray(features, dtype=np.float32)
    if feats.ndim != 2 or feats.shape[0] == 0:
        raise ValueError(f"features must be a non-empty [rows, dim] array, got shape {feats.shape}")
    if not np.isfinite(feats).all():
        raise ValueError("features contain NaN or infinite values")
    say = progress or (lambda _msg: None)
    rng = np.random.default_rng(seed)
    feats = feats[rng.permutation(feats.shape[0])]
    dim = feats.shape[1]
    if feats.shape[0] > KMEANS_ABOVE_ROWS:
        # RVC reduces with scikit-learn's MiniBatchKMeans; faiss' k-means does the same job
        # without another dependency.
        say(f"reducing {feats.shape[0]} rows to {KMEANS_CENTROIDS} k-means centroids")
        kmeans = faiss.Kmeans(dim, KMEANS_CENTROIDS, niter=20, seed=seed, verbose=False)
        kmeans.train(feats)
        feats = np.ascontiguousarray(kmeans.centroids, dtype=np.float32)
    n_ivf = ivf_lists(feats.shape[0])
    say(f"training IVF{n_ivf},Flat on {feats.shape[0]} x {dim} features")
    index = faiss.index_factory(dim, f"IVF{n_ivf},Flat")
    ivf = faiss.extract_index_ivf(index)
    ivf.nprobe = 1
    # faiss prints its own "please provide at least ... training points" to stderr; the
    # same advice goes through logging instead.
    recommended = n_ivf * ivf.cp.min_points_per_centroid
    if feats.shape[0] < recommended:
        log.warning(
            "training %d lists on %d rows; faiss recommends at least %d: the index works, coarser",
            n_ivf,
            feats.shape[0],
            recommended,
        )
    ivf.cp.min_points_per_centroid = 1
    index.train(feats)
    for start in range(0, feats.shape[0], ADD_BATCH_ROWS):
        index.add(feats[start : start + ADD_BATCH_ROWS])
        say(f"added {min(start + ADD_BATCH_ROWS, feats.shape[0])}/{feats.shape[0]} rows")
    faiss.write_index(index, str(out))
    return index
