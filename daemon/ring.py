"""Preallocated multichannel ring buffers indexed by absolute sample position.

One writer and one reader per buffer; positions only grow, so the reader can tell from
a published position what is valid. No allocation after construction: reads and
writes copy into caller-provided arrays, in at most two slices.
"""

from __future__ import annotations

import numpy as np


class SampleRing:
    """[channels, capacity] float32 samples addressed by absolute position (mod capacity)."""

    def __init__(self, channels: int, capacity: int) -> None:
        self.capacity = 1 << max(1, int(capacity - 1).bit_length())
        self.data = np.zeros((channels, self.capacity), dtype=np.float32)

    def write(self, channel: int, position: int, samples: np.ndarray) -> None:
        n = len(samples)
        start = position % self.capacity
        first = min(n, self.capacity - start)
        row = self.data[channel]
        row[start : start + first] = samples[:first]
        if first < n:
            row[: n - first] = samples[first:]

    def read(self, channel: int, position: int, out: np.ndarray) -> None:
        n = len(out)
        start = position % self.capacity
        first = min(n, self.capacity - start)
        row = self.data[channel]
        out[:first] = row[start : start + first]
        if first < n:
            out[first:] = row[: n - first]
