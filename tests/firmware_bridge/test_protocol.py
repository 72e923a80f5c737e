"""Protocol v1: the Python codec and the C firmware pass the same vectors; both survive 10⁶ bad bytes."""

from __future__ import annotations

import json
import random
import subprocess

import pytest
from crc import Calculator, Crc16

from firmware_bridge.firmware_build import build, sanitizers_available
from firmware_bridge.protocol import (
    MAX_JOINTS,
    FrameDecoder,
    Heartbeat,
    JointCommand,
    Telemetry,
    confidence_to_u8,
    crc16,
    encode,
    encode_body,
    message_fields,
    parse_payload,
    radians_to_mrad,
)
from firmware_bridge.vectors_tool import VECTORS_PATH, build_vectors

VECTORS = json.loads(VECTORS_PATH.read_text())
FRAMES = {f["name"]: f for f in VECTORS["frames"]}


def test_vectors_file_is_current() -> None:
    assert json.loads(json.dumps(build_vectors())) == VECTORS, "run python -m firmware_bridge.vectors_tool"


def test_crc_check_value() -> None:
    assert f"{crc16(VECTORS['crc_check']['input_ascii'].encode()):04x}" == VECTORS["crc_check"]["crc16"]


def test_crc_equals_the_crc_package_ccitt_false() -> None:
    """binascii.crc_hqx from 0xFFFF is the `crc` package's CRC-16/IBM-3740 (alias CCITT-FALSE) on any data."""
    calculator = Calculator(Crc16.IBM_3740)
    rng = random.Random(5)
    for data in [b"", b"\x00", b"123456789"] + [rng.randbytes(rng.randrange(300)) for _ in range(200)]:
        assert crc16(data) == calculator.checksum(data)


def test_version_mismatch_reports_the_version_seen() -> None:
    decoder = FrameDecoder()
    other = encode_body(0x81, 1, 1, Telemetry(0, 2, 0, 0, ()).payload(), version=7)
    assert decoder.feed(_wire(other) * 3 + encode(Heartbeat(), 2, 2))[0].message == Heartbeat()
    assert decoder.last_bad_version == 7 and decoder.versions_seen == {7: 3} and decoder.stats["version"] == 3


def test_encoder_refuses_what_the_protocol_cannot_carry() -> None:
    with pytest.raises(ValueError, match="at most 16"):
        encode(JointCommand((0,) * 17, True, 1), 0, 0)
    with pytest.raises(ValueError, match="joint target 2 is nan"):
        radians_to_mrad([0.0, 1.0, float("nan")])
    with pytest.raises(ValueError, match="NaN"):
        confidence_to_u8(float("nan"))
    assert radians_to_mrad([40.0, -40.0, 0.0015]) == (32767, -32768, 2)
    assert (confidence_to_u8(2.0), confidence_to_u8(-1.0), confidence_to_u8(0.5)) == (255, 0, 128)


@pytest.mark.parametrize("vector", VECTORS["frames"], ids=lambda v: v["name"])
def test_python_encodes_and_decodes_vector_frames(vector: dict) -> None:
    message = parse_payload(vector["type"], bytes.fromhex(vector["payload"]))
    assert encode(message, vector["seq"], vector["timestamp_us"]).hex() == vector["wire"]
    (frame,) = FrameDecoder().feed(bytes.fromhex(vector["wire"]))
    assert (frame.type, frame.seq, frame.timestamp_us, frame.message) == (
        vector["type"],
        vector["seq"],
        vector["timestamp_us"],
        message,
    )
    assert b"\x00" not in bytes.fromhex(vector["wire"])[:-1]
    assert message_fields(message) == vector["message"]
    assert encode_body(vector["type"], vector["seq"], vector["timestamp_us"], frame.payload).hex() == vector["body"]


@pytest.mark.parametrize("vector", VECTORS["streams"], ids=lambda v: v["name"])
def test_python_decoder_stream_vectors(vector: dict) -> None:
    decoder = FrameDecoder()
    frames = decoder.feed(bytes.fromhex(vector["wire"]))
    expected = [FRAMES[name] for name in vector["expect_frames"]]
    assert [(f.type, f.seq, f.timestamp_us) for f in frames] == [
        (e["type"], e["seq"], e["timestamp_us"]) for e in expected
    ]
    assert {r: decoder.stats.get(r, 0) for r in VECTORS["drop_reasons"]} == vector["expect_drops"]


def _run_codec(mode: str, text: str) -> list[str]:
    result = subprocess.run([str(build("codec")), mode], input=text, capture_output=True, text=True, check=True)
    return result.stdout.splitlines()


def test_c_encoder_matches_vectors() -> None:
    lines = [f"{v['version']} {v['type']} {v['seq']} {v['timestamp_us']} {v['payload']}" for v in VECTORS["frames"]]
    assert _run_codec("encode", "\n".join(lines) + "\n") == [v["wire"] for v in VECTORS["frames"]]


def test_c_decoder_matches_vectors() -> None:
    lines = []
    for vector in VECTORS["frames"] + VECTORS["streams"]:
        lines += ["RESET", vector["wire"]]
    output = _run_codec("decode", "\n".join(lines) + "\n")
    blocks: list[list[str]] = [[]]
    for line in output:
        blocks[-1].append(line)
        if line.startswith("STATS"):
            blocks.append([])
    for vector, block in zip(VECTORS["frames"] + VECTORS["streams"], blocks, strict=False):
        names = vector.get("expect_frames", [vector["name"]])
        expected = [
            f"FRAME {FRAMES[n]['type']} {FRAMES[n]['seq']} {FRAMES[n]['timestamp_us']} {FRAMES[n]['payload']}"
            for n in names
        ]
        assert block[:-1] == expected, vector["name"]
        counts = [int(x) for x in block[-1].split()[1:]]
        assert counts[0] == len(names)
        drops = vector.get("expect_drops", dict.fromkeys(VECTORS["drop_reasons"], 0))
        assert counts[1:] == [drops[r] for r in VECTORS["drop_reasons"]], vector["name"]


def _corrupted_stream(total: int, seed: int) -> tuple[bytes, set[bytes]]:
    """Valid frames, random garbage, bit-flipped and truncated frames, mixed; returns (stream, sent bodies)."""
    rng = random.Random(seed)
    out = bytearray()
    sent: set[bytes] = set()
    while len(out) < total:
        kind = rng.randrange(4)
        if kind == 0:
            out += rng.randbytes(rng.randrange(1, 64))
            continue
        msg_type = rng.choice([0x01, 0x81])
        if rng.random() < 0.5:  # a well-formed message
            joints = tuple(rng.randrange(-32768, 32768) for _ in range(rng.randrange(MAX_JOINTS + 1)))
            message = JointCommand(joints, True, 9) if msg_type == 0x01 else Telemetry(1, 1, 1, 0, joints)
            payload = message.payload()
        else:  # a valid frame whose payload does not fit its type (mostly): the controller's problem in C
            payload = rng.randbytes(rng.randrange(0, 40))
        body = encode_body(msg_type, rng.randrange(65536), rng.randrange(2**32), payload)
        wire = bytearray(_wire(body))
        sent.add(body)
        if kind == 2:
            for _ in range(rng.randrange(1, 4)):
                wire[rng.randrange(len(wire))] ^= 1 << rng.randrange(8)
        elif kind == 3 and len(wire) > 2:
            wire = wire[: rng.randrange(1, len(wire) - 1)]
        out += wire
    return bytes(out), sent


def _wire(body: bytes) -> bytes:
    from cobs import cobs

    return cobs.encode(body) + b"\x00"


def test_a_million_corrupted_bytes_python() -> None:
    stream, sent = _corrupted_stream(1_000_000, seed=1)
    decoder = FrameDecoder()
    accepted = []
    for start in range(0, len(stream), 4096):  # arbitrary chunking, as a serial port delivers
        accepted += decoder.feed(stream[start : start + 4096])
    bodies = {encode_body(f.type, f.seq, f.timestamp_us, f.payload) for f in accepted}
    assert accepted, "valid frames in the mix must get through"
    assert bodies <= sent, "a frame that was never sent was accepted"
    assert decoder.dropped > 1000


def test_python_rejects_payloads_that_do_not_fit_their_type() -> None:
    decoder = FrameDecoder()
    body = encode_body(0x01, 1, 1, bytes([1, 200, 3, 0, 0]))  # says 3 joints, carries 1
    assert decoder.feed(_wire(body)) == []
    assert decoder.stats["payload"] == 1
    telemetry = Telemetry(1, 1, 1, 0, (1, 2))
    assert FrameDecoder().feed(encode(telemetry, 1, 1))[0].message == telemetry
    assert isinstance(parse_payload(1, JointCommand((5,), True, 1).payload()), JointCommand)


@pytest.mark.parametrize("sanitize", [False, True], ids=["plain", "asan+ubsan"])
def test_a_million_corrupted_bytes_c(sanitize: bool) -> None:
    if sanitize and not sanitizers_available():
        pytest.skip("this compiler cannot build AddressSanitizer/UBSan binaries here")
    binary = build("codec", sanitize=sanitize)
    result = subprocess.run([str(binary), "fuzz", "1000000", "7"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    fields = dict(item.split("=") for item in result.stdout.split()[1:])
    assert int(fields["bytes"]) >= 1_000_000
    assert int(fields["corrupted"]) == 0 and int(fields["accepted"]) > 1000 and int(fields["drops"]) > 1000


def test_python_and_c_decoders_agree_on_a_corrupted_stream() -> None:
    """Same 500 kB of garbage, bit flips and truncations, same chunks: same frames, same drop counts."""
    stream, _ = _corrupted_stream(500_000, seed=11)
    chunks = [stream[i : i + 997] for i in range(0, len(stream), 997)]
    output = _run_codec("decode", "\n".join(c.hex() for c in chunks) + "\n")
    c_frames = [line for line in output if line.startswith("FRAME")]
    c_counts = [int(x) for x in output[-1].split()[1:]]
    decoder = FrameDecoder()
    py_frames = []
    for chunk in chunks:
        py_frames += [f"FRAME {f.type} {f.seq} {f.timestamp_us} {f.payload.hex()}" for f in decoder.feed(chunk)]
    assert len(py_frames) > 500
    assert py_frames == [line for line in c_frames if _parses(line)]
    python_counts = [decoder.stats["frames"] + decoder.stats["payload"]]  # C has no payload check in its decoder
    assert python_counts + [decoder.stats[r] for r in VECTORS["drop_reasons"]] == c_counts


def _parses(frame_line: str) -> bool:
    """Does a C "FRAME type seq stamp payload" line carry a payload that fits its type?"""
    _, msg_type, _, _, *payload = frame_line.split()
    try:
        parse_payload(int(msg_type), bytes.fromhex(payload[0] if payload else ""))
    except ValueError:
        return False
    return True
