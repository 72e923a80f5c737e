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
@given(st.binary(max_size=2000), st.integers(1, 300))
def test_random_bytes_never_crash_nor_yield_frames(data: bytes, chunk: int) -> None:
    """Nothing was sent, so nothing may come out. (A random block passes CRC-16, version, length, type and
    payload checks together with odds far below 2⁻³⁰; hypothesis does not compute CRCs.)"""
    decoder = FrameDecoder()
    frames = []
    for start in range(0, len(data), chunk):
        frames += decoder.feed(data[start : start + chunk])
    assert frames == []
    assert decoder.stats["bytes"] == len(data)
    assert decoder.dropped == sum(1 for block in data.split(b"\x00")[:-1] if block)  # one verdict per block


garbage = st.binary(min_size=1, max_size=80)
damage = st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 7)), min_size=1, max_size=4)
stream_items = st.lists(
    st.one_of(
        st.tuples(st.just("frame"), framed),
        st.tuples(st.just("flipped"), st.tuples(framed, damage)),
        st.tuples(st.just("truncated"), st.tuples(framed, st.floats(0.05, 0.95))),
        st.tuples(st.just("garbage"), garbage),
        st.tuples(st.just("garbage_then_delimiter"), garbage),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=300)
@given(stream_items, st.integers(1, 97))
def test_mixed_streams_yield_only_sent_frames_and_resynchronise(items: list, chunk: int) -> None:
    """Frames, bit-flipped frames, truncated frames and garbage, mixed: every frame that comes out is one
    that was sent, and every intact frame that follows a delimiter (the stream start, another frame, or
    garbage ended by 0x00) comes out — the decoder resynchronises."""
    stream = bytearray()
    sent: list[tuple] = []
    must_arrive: list[tuple] = []
    after_delimiter = True
    for kind, value in items:
        if kind == "frame":
            message, seq, stamp = value
            sent.append((message, seq, stamp))
            if after_delimiter:
                must_arrive.append((message, seq, stamp))
            stream += encode(message, seq, stamp)
        elif kind == "flipped":
            (message, seq, stamp), flips = value
            sent.append((message, seq, stamp))
            wire = bytearray(encode(message, seq, stamp))
            for position, bit in flips:
                wire[position % len(wire)] ^= 1 << bit
            stream += wire
        elif kind == "truncated":
            (message, seq, stamp), fraction = value
            sent.append((message, seq, stamp))
            wire = encode(message, seq, stamp)
            stream += wire[: max(1, int(len(wire) * fraction))]
        else:
            stream += value + (b"\x00" if kind == "garbage_then_delimiter" else b"")
        after_delimiter = stream.endswith(b"\x00")
    decoder = FrameDecoder()
    out = []
    for start in range(0, len(stream), chunk):
        out += [(f.message, f.seq, f.timestamp_us) for f in decoder.feed(bytes(stream[start : start + chunk]))]
    out += [(f.message, f.seq, f.timestamp_us) for f in decoder.feed(b"\x00")]  # end of line flushes
    for frame in out:
        assert frame in sent, f"decoder produced a frame that was never sent: {frame}"
    remaining = list(out)
    for frame in must_arrive:
        assert frame in remaining, f"an intact frame after a delimiter was lost: {frame}"
        remaining.remove(frame)


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
