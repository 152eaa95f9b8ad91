"""Time-ordered identifiers (UUIDv7, RFC 9562): newest-first listing is ordering by id."""

from __future__ import annotations

import os
import threading
import time

_lock = threading.Lock()
_last = 0
#: Random bytes fetched ahead: one getrandom() call per 256 ids instead of one per id.
_RANDOM_AHEAD = 10 * 256
_random = b""
_used = 0


def _forget_random() -> None:
    """A forked child must not hand out its parent's random bytes (the same ids)."""
    global _random, _used
    _random, _used = b"", 0


os.register_at_fork(after_in_child=_forget_random)


def new_id(now: float | None = None) -> str:
    """A UUIDv7 string: 48-bit Unix milliseconds, then 74 random bits.

    Monotonic within the process (RFC 9562 §6.2, method 2): an id made in the same
    millisecond as the previous one, or with a clock that stepped back, is the previous one
    plus one, so a batch's ids follow the order they were made in.
    """
    global _last, _random, _used
    ms = int((time.time() if now is None else now) * 1000)
    with _lock:
        if _used == len(_random):
            _random, _used = os.urandom(_RANDOM_AHEAD), 0
        rand = int.from_bytes(_random[_used : _used + 10], "big")
        _used += 10
        value = (ms & 0xFFFF_FFFF_FFFF) << 80
        value |= 0x7 << 76  # version
        value |= ((rand >> 62) & 0xFFF) << 64  # rand_a: 12 bits
        value |= 0b10 << 62  # variant
        value |= rand & 0x3FFF_FFFF_FFFF_FFFF  # rand_b: 62 bits
        if value <= _last:
            value = _next_after(_last)
        _last = value
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _next_after(value: int) -> int:
    """The smallest valid UUIDv7 greater than ``value`` (skipping the fixed version and
    variant bits, carrying from rand_b into rand_a into the timestamp)."""
    rand_b = (value & 0x3FFF_FFFF_FFFF_FFFF) + 1
    rand_a = (value >> 64) & 0xFFF
    ms = value >> 80
    if rand_b > 0x3FFF_FFFF_FFFF_FFFF:
        rand_b = 0
        rand_a += 1
        if rand_a > 0xFFF:
            rand_a = 0
            ms += 1
    return (ms << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
