import os
import uuid

from hypothesis import given
from hypothesis import strategies as st

from herald.domain.ids import _next_after, new_id


def test_ids_are_uuid7_and_increase_even_within_one_millisecond():
    ids = [new_id(1_800_000_000.0) for _ in range(1000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 1000
    for value in ids:
        parsed = uuid.UUID(value)
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == value


def test_a_clock_stepping_back_does_not_break_the_order():
    later = new_id(1_900_000_000.0)
    earlier = new_id(1_899_999_999.0)
    assert earlier > later


@given(st.integers(0, 2**48 - 1), st.integers(0, 0xFFF), st.integers(0, 2**62 - 1))
def test_next_after_is_the_following_valid_uuid7(ms: int, rand_a: int, rand_b: int):
    value = (ms << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
    following = _next_after(value)
    assert following > value
    parsed = uuid.UUID(int=following)
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122


def test_a_forked_child_makes_other_ids_than_its_parent():
    new_id(2_000_000_000.0)  # the parent has random bytes fetched ahead
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write, new_id(2_000_000_001.0).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    assert child != new_id(2_000_000_001.0)
