"""Serial protocol v1 between the host and the hand firmware (docs/PROTOCOL.md): codec and stream decoder.

wire = COBS(header | payload | crc16) 0x00 ; header = version u8, type u8, seq u16, timestamp_us u32,
payload_len u8 ; CRC-16/CCITT-FALSE over header + payload ; little-endian throughout.

The decoder never raises on bad bytes: it drops the frame, counts why in `stats`, and resynchronises at
the next 0x00. COBS comes from the `cobs` package. The CRC is `binascii.crc_hqx` (CRC-CCITT, poly 0x1021)
started at 0xFFFF, which is exactly CRC-16/CCITT-FALSE (the `crc` package's `Crc16.IBM_3740`; the tests
check both agree). The stdlib one is used on the hot path because it is C: ~0.15 µs for a 23-byte body
against ~120 µs for the pure-Python `crc` package (benchmarks/bench_protocol.py), which alone would cap
the decoder near 0.2 MB/s.
"""

from __future__ import annotations

import binascii
import math
import struct
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from enum import IntEnum

from cobs import cobs

PROTOCOL_VERSION = 1
MAX_JOINTS = 16
MAX_PAYLOAD = 255
HEADER = struct.Struct("<BBHIB")
HEADER_SIZE = HEADER.size  # 9
CRC_SIZE = 2
MAX_BODY = HEADER_SIZE + MAX_PAYLOAD + CRC_SIZE
MAX_ENCODED = MAX_BODY + MAX_BODY // 254 + 1
CLEAR_ESTOP_MAGIC = 0xC1EA
WATCHDOG_MIN_MS = 20  # what CONFIGURE accepts (PROTO_WATCHDOG_MIN_MS / _MAX_MS in firmware/protocol.h)
WATCHDOG_MAX_MS = 2000


class MsgType(IntEnum):
    JOINT_COMMAND = 0x01
    HEARTBEAT = 0x02
    ESTOP = 0x03
    CLEAR_ESTOP = 0x04
    CONFIGURE = 0x05
    TELEMETRY = 0x81
    FAULT = 0x82


class DeviceState(IntEnum):
    IDLE = 0
    ACTIVE = 1
    HOLD = 2
    SAFE = 3
    ESTOP = 4


class FaultCode(IntEnum):
    CRC_ERROR = 1
    FRAMING_ERROR = 2
    BAD_VERSION = 3
    BAD_LENGTH = 4
    UNKNOWN_TYPE = 5
    JOINT_COUNT_MISMATCH = 6
    LIMIT_CLAMPED = 7
    WATCHDOG_EXPIRED = 8
    ESTOP_LATCHED = 9
    BAD_CLEAR_MAGIC = 10
    BAD_CONFIG = 11


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, xorout 0); check("123456789") = 0x29B1."""
    return binascii.crc_hqx(data, 0xFFFF)


# --------------------------------------------------------------------------------------------------
# Messages
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class JointCommand:
    targets_mrad: tuple[int, ...]
    active: bool  # flags bit 0: the runtime's gate is open, follow the targets
    confidence: int  # 0…255 ↦ 0…1
    safe: bool = False  # flags bit 1 (gate closed only): ease to the configured safe pose now
    type = MsgType.JOINT_COMMAND

    def payload(self) -> bytes:
        n = len(self.targets_mrad)
        _check_joint_count(n, "joint command")
        flags = int(self.active) | (int(self.safe) << 1)
        return struct.pack(f"<BBB{n}h", flags, self.confidence, n, *self.targets_mrad)


@dataclass(frozen=True)
class Heartbeat:
    type = MsgType.HEARTBEAT

    def payload(self) -> bytes:
        return b""


@dataclass(frozen=True)
class EStop:
    reason: int = 0
    type = MsgType.ESTOP

    def payload(self) -> bytes:
        return struct.pack("<B", self.reason)


@dataclass(frozen=True)
class ClearEStop:
    magic: int = CLEAR_ESTOP_MAGIC
    type = MsgType.CLEAR_ESTOP

    def payload(self) -> bytes:
        return struct.pack("<H", self.magic)


@dataclass(frozen=True)
class JointLimit:
    min_mrad: int
    max_mrad: int
    max_slew_mrad_s: int
    safe_mrad: int


@dataclass(frozen=True)
class Configure:
    watchdog_ms: int
    limits: tuple[JointLimit, ...]
    type = MsgType.CONFIGURE

    def payload(self) -> bytes:
        _check_joint_count(len(self.limits), "configure")
        body = struct.pack("<HB", self.watchdog_ms, len(self.limits))
        for lim in self.limits:
            body += struct.pack("<hhHh", lim.min_mrad, lim.max_mrad, lim.max_slew_mrad_s, lim.safe_mrad)
        return body


@dataclass(frozen=True)
class Telemetry:
    acked_seq: int
    acked_type: int
    state: int
    faults: int
    positions_mrad: tuple[int, ...]
    type = MsgType.TELEMETRY

    def payload(self) -> bytes:
        n = len(self.positions_mrad)
        _check_joint_count(n, "telemetry")
        return struct.pack(
            f"<HBBHB{n}h", self.acked_seq, self.acked_type, self.state, self.faults, n, *self.positions_mrad
        )


@dataclass(frozen=True)
class Fault:
    code: int
    detail: int = 0
    type = MsgType.FAULT

    def payload(self) -> bytes:
        return struct.pack("<BH", self.code, self.detail)


Message = JointCommand | Heartbeat | EStop | ClearEStop | Configure | Telemetry | Fault


def message_fields(message: Message) -> dict:
    """The message's fields as plain JSON values (tuples → lists, joint limits → dicts), for vectors and logs."""
    return json_plain(asdict(message))


def json_plain(value: object) -> object:
    if isinstance(value, dict):
        return {k: json_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_plain(v) for v in value]
    return value


def parse_payload(msg_type: int, payload: bytes) -> Message:
    """Payload bytes → message; ValueError when the payload does not fit the type."""
    try:
        if msg_type == MsgType.JOINT_COMMAND:
            flags, confidence, n = struct.unpack_from("<BBB", payload)
            _expect(len(payload) == 3 + 2 * n and n <= MAX_JOINTS, "joint command length")
            return JointCommand(struct.unpack_from(f"<{n}h", payload, 3), bool(flags & 1), confidence, bool(flags & 2))
        if msg_type == MsgType.HEARTBEAT:
            _expect(not payload, "heartbeat has no payload")
            return Heartbeat()
        if msg_type == MsgType.ESTOP:
            _expect(len(payload) == 1, "estop length")
            return EStop(payload[0])
        if msg_type == MsgType.CLEAR_ESTOP:
            _expect(len(payload) == 2, "clear-estop length")
            return ClearEStop(struct.unpack("<H", payload)[0])
        if msg_type == MsgType.CONFIGURE:
            watchdog, n = struct.unpack_from("<HB", payload)
            _expect(len(payload) == 3 + 8 * n and n <= MAX_JOINTS, "configure length")
            limits = tuple(JointLimit(*struct.unpack_from("<hhHh", payload, 3 + 8 * k)) for k in range(n))
            return Configure(watchdog, limits)
        if msg_type == MsgType.TELEMETRY:
            seq, acked_type, state, faults, n = struct.unpack_from("<HBBHB", payload)
            _expect(len(payload) == 7 + 2 * n and n <= MAX_JOINTS, "telemetry length")
            return Telemetry(seq, acked_type, state, faults, struct.unpack_from(f"<{n}h", payload, 7))
        if msg_type == MsgType.FAULT:
            _expect(len(payload) == 3, "fault length")
            code, detail = struct.unpack("<BH", payload)
            return Fault(code, detail)
    except struct.error as error:
        raise ValueError(f"payload too short for type 0x{msg_type:02x}") from error
    raise ValueError(f"unknown message type 0x{msg_type:02x}")


def _expect(condition: bool, what: str) -> None:
    if not condition:
        raise ValueError(f"malformed payload: {what}")


# --------------------------------------------------------------------------------------------------
# Frames
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Frame:
    type: int
    seq: int
    timestamp_us: int
    message: Message
    version: int = PROTOCOL_VERSION
    payload: bytes = b""  # the payload bytes as received


def encode_body(msg_type: int, seq: int, timestamp_us: int, payload: bytes, version: int = PROTOCOL_VERSION) -> bytes:
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    head = HEADER.pack(version, msg_type, seq & 0xFFFF, timestamp_us & 0xFFFFFFFF, len(payload))
    return head + payload + struct.pack("<H", crc16(head + payload))


def encode(message: Message, seq: int, timestamp_us: int) -> bytes:
    """A message → its bytes on the wire (COBS-encoded body + 0x00 delimiter)."""
    return cobs.encode(encode_body(message.type, seq, timestamp_us, message.payload())) + b"\x00"


@dataclass
class FrameDecoder:
    """Streaming decoder: feed any bytes, get whole valid frames; bad input is counted, never raised.

    `stats` counts "frames", "bytes" and the drop reasons "cobs", "too_short", "too_long", "crc", "version",
    "length", "type" (the C decoder's reasons, same names, same rules: tests feed both the same streams)
    and "payload" (a known type whose payload does not parse; the C firmware reports that as a BAD_LENGTH
    fault instead). A frame with a valid CRC but another protocol version is counted under "version" and
    its version is kept in `last_bad_version` and `versions_seen`, so a host can say which version the
    device speaks.
    """

    max_encoded: int = MAX_ENCODED
    stats: Counter = field(default_factory=Counter)
    last_bad_version: int | None = None
    versions_seen: Counter = field(default_factory=Counter)  # other protocol versions seen (CRC-valid frames)
    _buffer: bytearray = field(default_factory=bytearray)
    _overflow: bool = False

    def feed(self, data: bytes) -> list[Frame]:
        self.stats["bytes"] += len(data)
        parts = bytes(data).split(b"\x00")
        frames: list[Frame] = []
        for part in parts[:-1]:  # every part but the last was ended by a delimiter
            frames.extend(self._complete(part))
        if not self._overflow:
            self._buffer += parts[-1]
            if len(self._buffer) > self.max_encoded:  # no delimiter for too long: drop until the next one
                self._overflow = True
                self._buffer.clear()
        return frames

    def _complete(self, chunk: bytes) -> list[Frame]:
        """A 0x00 arrived: `chunk` ends the current frame."""
        encoded = bytes(self._buffer) + chunk
        overflow = self._overflow or len(encoded) > self.max_encoded
        self._buffer.clear()
        self._overflow = False
        if overflow:
            self.stats["too_long"] += 1
            return []
        if not encoded:
            return []  # back-to-back delimiters: idle line
        frame = self._decode(encoded)
        return [frame] if frame is not None else []

    def _decode(self, encoded: bytes) -> Frame | None:
        try:
            body = cobs.decode(encoded)
        except cobs.DecodeError:
            self.stats["cobs"] += 1
            return None
        if len(body) > MAX_BODY:  # cannot be a body; the C decoder's buffer cannot hold it either ("cobs")
            self.stats["cobs"] += 1
            return None
        if len(body) < HEADER_SIZE + CRC_SIZE:
            self.stats["too_short"] += 1
            return None
        if crc16(body[:-CRC_SIZE]) != struct.unpack_from("<H", body, len(body) - CRC_SIZE)[0]:
            self.stats["crc"] += 1
            return None
        version, msg_type, seq, stamp, length = HEADER.unpack_from(body)
        if version != PROTOCOL_VERSION:
            self.stats["version"] += 1
            self.last_bad_version = version
            self.versions_seen[version] += 1
            return None
        if length != len(body) - HEADER_SIZE - CRC_SIZE:
            self.stats["length"] += 1
            return None
        if msg_type not in MsgType._value2member_map_:
            self.stats["type"] += 1
            return None
        try:
            message = parse_payload(msg_type, body[HEADER_SIZE : HEADER_SIZE + length])
        except ValueError:
            self.stats["payload"] += 1
            return None
        self.stats["frames"] += 1
        return Frame(msg_type, seq, stamp, message, version, body[HEADER_SIZE : HEADER_SIZE + length])

    @property
    def dropped(self) -> int:
        return sum(v for k, v in self.stats.items() if k not in ("frames", "bytes"))


def radians_to_mrad(values: Sequence[float]) -> tuple[int, ...]:
    """Radians → int16 milliradians, saturating at the int16 range; a NaN/inf target is an error, not a pose."""
    out = []
    for k, v in enumerate(values):
        if not math.isfinite(v):
            raise ValueError(f"joint target {k} is {v}: refusing to send a non-finite target")
        out.append(max(-32768, min(32767, round(v * 1000.0))))
    return tuple(out)


def confidence_to_u8(confidence: float) -> int:
    """Confidence in [0, 1] → u8 (0…255), saturating; NaN is an error."""
    if math.isnan(confidence):
        raise ValueError("confidence is NaN")
    return max(0, min(255, round(confidence * 255.0)))


def _check_joint_count(n: int, what: str) -> None:
    if n > MAX_JOINTS:
        raise ValueError(f"{what}: {n} joints, the protocol carries at most {MAX_JOINTS}")
