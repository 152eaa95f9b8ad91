"""SMS encoding and segment counting (3GPP TS 23.038 GSM 7-bit alphabet, UCS-2)."""

from __future__ import annotations

from typing import NamedTuple

# GSM 03.38 basic character set (one septet each).
_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# The extension table: an escape septet plus one, so two each.
_EXTENDED = frozenset("^{}\\[~]|€\f")

_GSM_SINGLE, _GSM_PART = 160, 153  # a concatenated part gives 7 septets to its header
_UCS2_SINGLE, _UCS2_PART = 70, 67


class Segments(NamedTuple):
    parts: int
    encoding: str  # "GSM-7" or "UCS-2"
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)


def count_segments(body: str) -> Segments:
    """How many SMS segments ``body`` takes, as carriers bill it.

    GSM-7 when every character is in the GSM alphabet (extension characters count twice),
    otherwise UCS-2, where characters outside the BMP (most emoji) take two code units. A
    multi-part message spends part of each segment on its concatenation header, and a
    GSM escape pair or a UTF-16 surrogate pair is never split across segments.
    """
    if all(c in _BASIC or c in _EXTENDED for c in body):
        units = [2 if c in _EXTENDED else 1 for c in body]
        return Segments(_split(units, _GSM_SINGLE, _GSM_PART), "GSM-7", sum(units))
    units = [2 if ord(c) > 0xFFFF else 1 for c in body]
    return Segments(_split(units, _UCS2_SINGLE, _UCS2_PART), "UCS-2", sum(units))


def _split(units: list[int], single: int, part: int) -> int:
    total = sum(units)
    if total <= single:
        return 1
    count, used = 1, 0
    for size in units:
        if used + size > part:
            count += 1
            used = 0
        used += size
    return count


def truncate_to_segments(body: str, max_segments: int) -> str:
    """The longest prefix of ``body`` (ending in "…" when cut) that fits ``max_segments``."""
    if count_segments(body).parts <= max_segments:
        return body
    low, high = 0, len(body)
    while low < high:
        middle = (low + high + 1) // 2
        if count_segments(body[:middle].rstrip() + "…").parts <= max_segments:
            low = middle
        else:
            high = middle - 1
    return body[:low].rstrip() + "…"
