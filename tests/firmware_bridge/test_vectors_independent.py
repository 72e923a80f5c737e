"""The protocol vectors against COBS and CRC implementations that did not write them.

`protocol_vectors.json` is generated with the Python codec (the `cobs` package and `binascii.crc_hqx`).
Here its wire bytes are checked against the firmware's own COBS (cobs.c compiled alone with cc) and a
reference COBS written from the definition in Cheshire & Baker (1999), and each body's CRC against the
`crc` package's CRC-16/IBM-3740 (alias CCITT-FALSE).
"""

from __future__ import annotations

import json
import random
import struct
import subprocess
from pathlib import Path

import pytest
from cobs import cobs
from crc import Calculator, Crc16

from firmware_bridge.firmware_build import FIRMWARE_DIR, STRICT_FLAGS, compiler
from firmware_bridge.protocol import HEADER, MAX_BODY, MAX_ENCODED
from firmware_bridge.vectors_tool import VECTORS_PATH

VECTORS = json.loads(VECTORS_PATH.read_text())
COBS_TOOL = Path(__file__).with_name("c") / "cobs_tool.c"
MAX_BLOCK = 254  # data bytes a COBS block can carry (code byte 0xFF)


def reference_cobs_encode(data: bytes) -> bytes:
    """COBS by the paper: the data is cut after every zero and after every 254 non-zero bytes; each block is
    sent as (number of bytes + 1) then its non-zero bytes; a block cut at a zero stands for its bytes and that
    zero (a code below 0xFF), a full 254-byte block (0xFF) for its bytes alone. The packet's final block
    stands for the paper's appended phantom zero and is left out when it would be empty after a full block."""
    out = bytearray()
    block = bytearray()
    after_full_block = False
    for byte in data:
        if byte == 0:
            out += bytes([len(block) + 1]) + block
            block.clear()
            after_full_block = False
        else:
            block.append(byte)
            if len(block) == MAX_BLOCK:
                out += b"\xff" + block
                block.clear()
                after_full_block = True
    if block or not after_full_block:
        out += bytes([len(block) + 1]) + block
    return bytes(out)


def reference_cobs_decode(encoded: bytes) -> bytes | None:
    """Inverse of `reference_cobs_encode`; None for bytes no COBS encoder can produce."""
    out = bytearray()
    at = 0
    while at < len(encoded):
        code = encoded[at]
        block = encoded[at + 1 : at + code]
        if code == 0 or len(block) != code - 1 or 0 in block:
            return None
        out += block
        at += code
        if code != 0xFF and at < len(encoded):
            out.append(0)
    return bytes(out)


@pytest.fixture(scope="module")
def firmware_cobs(tmp_path_factory: pytest.TempPathFactory):
    """Run the firmware's cobs.c on many inputs at once: `run([("E"|"D", bytes), ...])` → bytes or None each."""
    binary = tmp_path_factory.mktemp("cobs") / "cobs_tool"
    command = [compiler(), *STRICT_FLAGS, "-I", str(FIRMWARE_DIR), str(COBS_TOOL), str(FIRMWARE_DIR / "cobs.c")]
    subprocess.run([*command, "-o", str(binary)], check=True, capture_output=True, text=True)

    def run(requests: list[tuple[str, bytes]]) -> list[bytes | None]:
        text = "".join(f"{mode} {data.hex()}\n" for mode, data in requests)
        result = subprocess.run([str(binary)], input=text, capture_output=True, text=True, check=True, timeout=30)
        return [None if line == "ERR" else bytes.fromhex(line) for line in result.stdout.splitlines()]

    return run


def _chunks(wire: bytes) -> list[bytes]:
    """The frames a stream holds between 0x00 delimiters (empty ones are idle delimiters)."""
    return [chunk for chunk in wire.split(b"\x00") if chunk]


def test_vector_wires_are_the_cobs_of_their_bodies_by_the_firmware_and_the_reference(firmware_cobs) -> None:
    frames = VECTORS["frames"]
    bodies = [bytes.fromhex(v["body"]) for v in frames]
    wires = [bytes.fromhex(v["wire"]) for v in frames]
    assert all(w.endswith(b"\x00") and b"\x00" not in w[:-1] for w in wires), "one delimiter, at the end"
    encoded = firmware_cobs([("E", body) for body in bodies])
    decoded = firmware_cobs([("D", wire[:-1]) for wire in wires])
    for vector, body, wire, c_encoded, c_decoded in zip(frames, bodies, wires, encoded, decoded, strict=True):
        assert c_encoded == wire[:-1], f"{vector['name']}: firmware cobs_encode"
        assert c_decoded == body, f"{vector['name']}: firmware cobs_decode"
        assert reference_cobs_encode(body) == wire[:-1], f"{vector['name']}: reference encode"
        assert reference_cobs_decode(wire[:-1]) == body, f"{vector['name']}: reference decode"


@pytest.mark.parametrize("vector", VECTORS["frames"], ids=lambda v: v["name"])
def test_vector_bodies_carry_their_fields_and_the_crc_package_checksum(vector: dict) -> None:
    body = bytes.fromhex(vector["body"])
    payload = bytes.fromhex(vector["payload"])
    header = HEADER.pack(vector["version"], vector["type"], vector["seq"], vector["timestamp_us"], len(payload))
    assert body[: HEADER.size] == header, "header: version, type, seq, timestamp, payload length (little-endian)"
    assert body[HEADER.size : -2] == payload
    (checksum,) = struct.unpack("<H", body[-2:])
    assert checksum == Calculator(Crc16.IBM_3740).checksum(body[:-2])


def test_stream_vectors_drop_for_cobs_exactly_what_the_reference_refuses(firmware_cobs) -> None:
    """A chunk the decoder can hold (≤ MAX_ENCODED bytes) is a `cobs` drop when it is not valid COBS or
    decodes to more than any body; the firmware's cobs_decode and the reference agree on every chunk."""
    for vector in VECTORS["streams"]:
        chunks = [c for c in _chunks(bytes.fromhex(vector["wire"])) if len(c) <= MAX_ENCODED]
        references = [reference_cobs_decode(chunk) for chunk in chunks]
        assert firmware_cobs([("D", chunk) for chunk in chunks]) == references, vector["name"]
        refused = sum(1 for body in references if body is None or len(body) > MAX_BODY)
        assert refused == vector["expect_drops"]["cobs"], vector["name"]


def _awkward_inputs() -> list[bytes]:
    """Lengths around the 254-byte block edge, long non-zero runs, zeros at the ends, and random bytes."""
    rng = random.Random(7)
    inputs = [b"", b"\x00", b"\x00\x00", b"\x11", b"\x11\x00"]
    for n in (1, 253, 254, 255, 256, 507, 508, 509, 762):
        run = bytes(rng.randrange(1, 256) for _ in range(n))
        inputs += [run, run + b"\x00", b"\x00" + run, run[: n // 2] + b"\x00" + run[n // 2 :]]
    for _ in range(300):
        n = rng.randrange(0, 700)
        zeros = rng.choice((0.0, 0.01, 0.3))
        inputs.append(bytes(0 if rng.random() < zeros else rng.randrange(1, 256) for _ in range(n)))
    return inputs


def test_firmware_package_and_reference_cobs_agree_beyond_the_vectors(firmware_cobs) -> None:
    """Valid frames never hold a 254-byte run of non-zero bytes, so the vectors never reach a 0xFF block;
    these inputs do (and every other awkward length), and all three encoders must agree byte for byte."""
    inputs = _awkward_inputs()
    encoded = [reference_cobs_encode(data) for data in inputs]
    assert firmware_cobs([("E", data) for data in inputs]) == encoded
    assert [cobs.encode(data) for data in inputs] == encoded
    assert firmware_cobs([("D", enc) for enc in encoded]) == inputs
    assert [reference_cobs_decode(enc) for enc in encoded] == inputs
    assert all(b"\x00" not in enc for enc in encoded)
