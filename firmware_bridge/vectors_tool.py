"""Writes `protocol_vectors.json`, the test vectors that the Python codec and the C firmware must both pass.

Run `python -m firmware_bridge.vectors_tool` after a deliberate protocol change (and bump the version).
Frames are built from explicit fields; expected wire bytes and decoder outcomes are recorded so any
implementation can check itself against them.
"""

from __future__ import annotations

import json
from pathlib import Path

from cobs import cobs

from firmware_bridge.protocol import (
    ClearEStop,
    Configure,
    EStop,
    Fault,
    Heartbeat,
    JointCommand,
    JointLimit,
    Telemetry,
    crc16,
    encode,
    encode_body,
    message_fields,
)

VECTORS_PATH = Path(__file__).with_name("protocol_vectors.json")
DROP_REASONS = ("cobs", "too_short", "too_long", "crc", "version", "length", "type")


def _frame(name: str, message: object, seq: int, stamp: int) -> dict:
    return {
        "name": name,
        "version": 1,
        "type": int(message.type),
        "seq": seq,
        "timestamp_us": stamp,
        "message": message_fields(message),
        "payload": message.payload().hex(),
        "body": encode_body(message.type, seq, stamp, message.payload()).hex(),
        "wire": encode(message, seq, stamp).hex(),
    }


def build_vectors() -> dict:
    frames = [
        _frame("joint_command_active", JointCommand((0, 1500, -250, 32767, -32768, 7), True, 230), 1, 1_000_000),
        _frame("joint_command_gate_closed", JointCommand((100, 100, 100, 100, 100, 100), False, 12), 2, 1_020_000),
        _frame("joint_command_go_safe", JointCommand((150, 200, 150, 150, 150, 150), False, 0, True), 3, 1_040_000),
        _frame("heartbeat", Heartbeat(), 65535, 0xFFFFFFFF),
        _frame("estop", EStop(3), 7, 42),
        _frame("clear_estop", ClearEStop(), 8, 43),
        _frame(
            "configure_two_joints",
            Configure(150, (JointLimit(0, 1600, 3500, 150), JointLimit(-500, 500, 800, 0))),
            9,
            44,
        ),
        _frame("telemetry", Telemetry(9, 5, 1, 0x0041, (150, 200, -3)), 0, 44),
        _frame("fault", Fault(6, 5), 1, 44),
        _frame(
            "joint_command_with_zero_bytes",
            JointCommand((0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), True, 0),
            256,
            0,
        ),
        _frame("telemetry_16_positions_longest_telemetry", Telemetry(1, 1, 1, 0, tuple(range(1, 17))), 3, 3),
    ]
    by_name = {f["name"]: f for f in frames}
    command = bytes.fromhex(by_name["joint_command_active"]["wire"])
    heartbeat = bytes.fromhex(by_name["heartbeat"]["wire"])
    body = encode_body(1, 5, 5, bytes.fromhex(by_name["joint_command_active"]["payload"]))
    bad_crc = bytearray(body)
    bad_crc[-1] ^= 0x01
    wrong_version = encode_body(1, 5, 5, b"", version=2)
    wrong_length = bytearray(encode_body(2, 5, 5, b""))
    wrong_length[8] = 3  # declares 3 payload bytes, has none (CRC recomputed so only the length is wrong)
    wrong_length[-2:] = crc16(bytes(wrong_length[:-2])).to_bytes(2, "little")
    unknown_type = encode_body(0x42, 5, 5, b"")
    overlong = b"\x01" * 100 + b"\x00" + b"\x01" * 166  # 267 bytes: COBS-encodes to 268, one more than a body
    flipped = bytearray(command)
    flipped[15] ^= 0x10  # a payload byte of the COBS-encoded command (0xdc → 0xcc; not a COBS code byte)

    def wire(b: bytes) -> bytes:
        return cobs.encode(bytes(b)) + b"\x00"

    streams = [
        ("two_frames_back_to_back", command + heartbeat, ["joint_command_active", "heartbeat"], {}),
        ("garbage_then_delimiter_then_frame", b"\x13\x37\xff\x00" + command, ["joint_command_active"], {"cobs": 1}),
        ("truncated_frame_swallows_the_next", command[:7] + command, [], {"crc": 1}),
        ("bad_crc", wire(bad_crc) + heartbeat, ["heartbeat"], {"crc": 1}),
        ("other_protocol_version", wire(wrong_version), [], {"version": 1}),
        ("length_field_mismatch", wire(wrong_length), [], {"length": 1}),
        ("unknown_type", wire(unknown_type), [], {"type": 1}),
        ("too_short", wire(b"\x01\x02\x03") + heartbeat, ["heartbeat"], {"too_short": 1}),
        ("too_long_without_delimiter", b"\x01" * 400 + b"\x00" + heartbeat, ["heartbeat"], {"too_long": 1}),
        ("idle_delimiters_are_ignored", b"\x00\x00\x00" + heartbeat + b"\x00", ["heartbeat"], {}),
        (
            "garbage_without_delimiter_costs_the_next_frame",
            b"\x01\x01" + heartbeat + command,
            ["joint_command_active"],
            {"crc": 1},
        ),
        ("cobs_code_past_the_end", b"\x09\x01\x02\x00" + heartbeat, ["heartbeat"], {"cobs": 1}),
        ("one_bit_flipped_in_payload", flipped + heartbeat, ["heartbeat"], {"crc": 1}),
        ("other_version_then_ours", wire(wrong_version) + heartbeat, ["heartbeat"], {"version": 1}),
        ("body_longer_than_any_frame", wire(overlong) + heartbeat, ["heartbeat"], {"cobs": 1}),
    ]
    return {
        "about": "Protocol v1 test vectors (docs/PROTOCOL.md). frames: encode(fields) must equal wire and "
        "decode(wire) must give the fields back. streams: feeding wire (hex) into one fresh decoder must yield "
        "exactly expect_frames (by name, in order) and count exactly expect_drops (reasons not listed: 0).",
        "crc_check": {"input_ascii": "123456789", "crc16": "29b1"},
        "drop_reasons": list(DROP_REASONS),
        "frames": frames,
        "streams": [
            {"name": n, "wire": w.hex(), "expect_frames": f, "expect_drops": {r: d.get(r, 0) for r in DROP_REASONS}}
            for n, w, f, d in streams
        ],
    }


def main() -> None:
    VECTORS_PATH.write_text(json.dumps(build_vectors(), indent=1) + "\n")
    print(f"wrote {VECTORS_PATH}")


if __name__ == "__main__":
    main()
