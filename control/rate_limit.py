"""Per-sender token buckets: one flooding sender cannot starve the others.

Each sender (host, port) has its own bucket of messages (not datagrams: a bundle costs
one token per message it holds), refilled at `rate` per second up to `burst`. The
number of buckets is bounded; the least recently heard sender is forgotten first (it
starts again with a full bucket, which costs at most one burst).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Hashable


class SenderBuckets:
    def __init__(self, rate: float, burst: float, max_senders: int = 256) -> None:
        self.rate = rate
        """Messages per second each sender may send, sustained."""
        self.burst = burst
        """Messages a quiet sender may send at once."""
        self.max_senders = max_senders
        self._buckets: OrderedDict[Hashable, list[float]] = OrderedDict()

    def take(self, sender: Hashable, n: int = 1, now: float | None = None) -> bool:
        """Spend `n` tokens of `sender`'s bucket; False (nothing spent) if it has fewer."""
        now = time.monotonic() if now is None else now
        bucket = self._buckets.get(sender)
        if bucket is None:
            bucket = [self.burst, now]
            self._buckets[sender] = bucket
            if len(self._buckets) > self.max_senders:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(sender)
            bucket[0] = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
            bucket[1] = now
        if bucket[0] < n:
            return False
        bucket[0] -= n
        return True
