"""Property tests (hypothesis): round trips, and no stream of bytes can crash the decoder or fake a frame."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge.protocol import (
    MAX_JOINTS,
    ClearEStop,
    Configure,
    EStop,
    Fault,
    FrameDecoder,
    Heartbeat,
    JointCommand,
    JointLimit,
    Telemetry,
    encode,
)

i16 = st.integers(-32768, 32767)
u8 = st.integers(0, 255)
u16 = st.integers(0, 65535)
joints = st.lists(i16, min_size=0, max_size=MAX_JOINTS).map(tuple)
messages = st.one_of(
    st.builds(JointCommand, joints, st.booleans(), u8),
    st.just(Heartbeat()),
    st.builds(EStop, u8),
    st.builds(ClearEStop, u16),
    st.builds(Configure, u16, st.lists(st.builds(JointLimit, i16, i16, u16, i16), max_size=MAX_JOINTS).map(tuple)),
    st.builds(Telemetry, u16, u8, u8, u16, joints),
    st.builds(Fault, u8, u16),
)
framed = st.tuples(messages, u16, st.integers(0, 2**32 - 1))


@given(st.lists(framed, min_size=1, max_size=8), st.integers(1, 64))
def test_round_trip_in_any_chunking(items: list, chunk: int) -> None:
    stream = b"".join(encode(m, seq, ts) for m, seq, ts in items)
    decoder = FrameDecoder()
    frames = []
    for start in range(0, len(stream), chunk):
        frames += decoder.feed(stream[start : start + chunk])
    assert [(f.message, f.seq, f.timestamp_us) for f in frames] == items
    assert decoder.dropped == 0


@settings(max_examples=300)
@given(st.binary(max_size=2000))
def test_random_bytes_never_crash_nor_yield_frames_silently(data: bytes) -> None:
    decoder = FrameDecoder()
    frames = decoder.feed(data)
    for frame in frames:  # a random frame may pass only with a valid CRC, version and length
        assert encode(frame.message, frame.seq, frame.timestamp_us)  # it is a well-formed message
    assert decoder.stats["bytes"] == len(data)


@settings(max_examples=300)
@given(framed, st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 7)), min_size=1, max_size=3))
def test_bit_flips_are_never_accepted_as_another_frame(item: tuple, flips: list) -> None:
    message, seq, stamp = item
    wire = bytearray(encode(message, seq, stamp))
    for position, bit in flips:
        wire[position % len(wire)] ^= 1 << bit
    frames = FrameDecoder().feed(bytes(wire) + b"\x00")
    for frame in frames:  # CRC-16 catches every 1–3-bit error in frames this short
        assert (frame.message, frame.seq, frame.timestamp_us) == (message, seq, stamp)
