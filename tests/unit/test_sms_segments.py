from hypothesis import given
from hypothesis import strategies as st

from herald.domain.sms import count_segments, truncate_to_segments


def test_gsm7_single_and_concatenated():
    assert count_segments("a" * 160) == (1, "GSM-7", 160)
    assert count_segments("a" * 161) == (2, "GSM-7", 161)
    assert count_segments("a" * 306) == (2, "GSM-7", 306)
    assert count_segments("a" * 307) == (3, "GSM-7", 307)


def test_extension_characters_count_twice():
    assert count_segments("€" * 80) == (1, "GSM-7", 160)
    assert count_segments("€" * 81).parts == 2


def test_ucs2_when_any_character_is_outside_gsm():
    assert count_segments("ä" * 160).encoding == "GSM-7"  # ä is in the GSM alphabet
    assert count_segments("ł" * 70) == (1, "UCS-2", 70)
    assert count_segments("ł" * 71) == (2, "UCS-2", 71)
    assert count_segments("😀" * 35) == (1, "UCS-2", 70)  # surrogate pairs: two units each
    assert count_segments("😀" * 36).parts == 2


def test_an_escape_pair_is_not_split_across_segments():
    # 152 septets then a two-septet character: the pair moves to the next segment.
    assert count_segments("a" * 152 + "€" + "a" * 10).parts == 2


@given(st.text(max_size=600), st.integers(1, 5))
def test_truncation_fits(body: str, max_segments: int):
    cut = truncate_to_segments(body, max_segments)
    assert count_segments(cut).parts <= max_segments or cut == "…"
    if count_segments(body).parts <= max_segments:
        assert cut == body
