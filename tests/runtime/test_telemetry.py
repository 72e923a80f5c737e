"""Telemetry server and client over real sockets (Unix and TCP on 127.0.0.1)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge.errors import UserError
from runtime.telemetry import (
    COMMANDS,
    MAX_CONTROL_LINE,
    TELEMETRY_VERSION,
    ControlRejection,
    ControlRequest,
    TelemetryClient,
    TelemetryDisconnected,
    TelemetryProtocolError,
    TelemetryServer,
    TelemetryUnavailable,
    encode_line,
    parse_address,
    parse_control_line,
)


def wait_until(predicate: Callable[[], object], timeout: float = 5.0, what: str = "condition") -> object:
    """Poll `predicate` until it is truthy; fail the test after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.005)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A short directory: Unix socket paths are limited to 107 bytes, pytest's tmp_path can be longer."""
    path = Path(tempfile.mkdtemp(prefix="tlm-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(params=["unix", "tcp"])
def address(request: pytest.FixtureRequest, short_dir: Path) -> str:
    return str(short_dir / "telemetry.sock") if request.param == "unix" else "127.0.0.1:0"


@pytest.fixture
def server_address_unix(short_dir: Path) -> str:
    return str(short_dir / "telemetry.sock")


@pytest.fixture
def server(address: str) -> Iterator[TelemetryServer]:
    srv = TelemetryServer(address, max_queue=16)
    srv.set_hello({"model": {"sha256": "ab" * 32, "window": 1000}, "hand": {"joints": 6}})
    srv.start()
    yield srv
    srv.close()


def snapshot(hop: int, size_kb: float = 0.0) -> dict:
    """A hop snapshot shaped like the runtime's (numpy values included)."""
    rng = np.random.default_rng(hop)
    snap = {
        "t": hop * 0.05,
        "hop": hop,
        "emg_rms_uv": rng.uniform(5, 50, 8).astype(np.float32),
        "quality_flags": np.zeros(8, np.uint8),
        "joints": rng.normal(0, 0.05, (21, 3)),
        "targets": np.array([0.1, 0.2, np.nan, 0.4, 0.5, 0.6]),
        "confidence": np.float32(0.8),
        "state": "ACTIVE",
        "gate_reason": "",
        "armed": True,
        "seq": hop + 1000,  # the runtime's own serial frame number: only "pub_seq" is the server's
    }
    if size_kb:
        pad = int(size_kb * 1024) - len(encode_line(snap))
        snap["pad"] = "x" * max(0, pad)
    return snap


def raw_connect(srv: TelemetryServer, rcvbuf: int | None = None) -> socket.socket:
    parsed = parse_address(srv.address)
    family = socket.AF_UNIX if parsed.kind == "unix" else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(5.0)
    sock.connect(parsed.path if parsed.kind == "unix" else (parsed.host, parsed.port))
    return sock


def read_lines(sock: socket.socket, count: int, timeout: float = 5.0) -> list[dict]:
    sock.settimeout(timeout)
    buf = b""
    out: list[dict] = []
    while len(out) < count:
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
        *lines, buf = buf.split(b"\n")
        out.extend(json.loads(line) for line in lines)
    return out


# ------------------------------------------------------------------------------------------------ stream


def test_hello_then_snapshots_arrive_in_order_with_the_version(server: TelemetryServer) -> None:
    with TelemetryClient(server.address) as client:
        hello = client.connect(timeout=5)
        assert hello["v"] == TELEMETRY_VERSION and hello["type"] == "hello"
        assert hello["model"]["sha256"] == "ab" * 32 and hello["hand"] == {"joints": 6}
        assert hello["commands"] == list(COMMANDS)
        got = []
        for hop in range(1, 201):
            server.publish(snapshot(hop))
            if hop % 10 == 0:  # read as we go, like a dashboard, so max_queue=16 never overflows
                got += [client.read(timeout=5) for _ in range(10)]
    assert [m["type"] for m in got] == ["hop"] * 200
    assert [m["pub_seq"] for m in got] == list(range(1, 201))
    assert [m["hop"] for m in got] == list(range(1, 201))
    assert all(m["v"] == TELEMETRY_VERSION for m in got)
    first = got[0]
    assert np.allclose(first["joints"], snapshot(1)["joints"])  # numpy arrays travel as nested lists
    assert first["targets"][2] is None  # NaN is not JSON: it arrives as null
    assert first["confidence"] == pytest.approx(0.8)
    assert [m["seq"] for m in got] == list(range(1001, 1201))
    assert client.missed == 0


def test_several_clients_each_get_the_stream_and_events(server: TelemetryServer) -> None:
    clients = [TelemetryClient(server.address) for _ in range(3)]
    for client in clients:
        client.connect(timeout=5)
    assert server.stats["clients"] == 3
    for hop in range(1, 6):
        server.publish(snapshot(hop))
    server.publish_event("estop_latched", "from the dashboard", {"source": "control"})
    for client in clients:
        got = [client.read(timeout=5) for _ in range(6)]
        events = [m for m in got if m["type"] == "event"]
        assert events and events[0]["kind"] == "estop_latched" and events[0]["data"] == {"source": "control"}
        assert [m["pub_seq"] for m in got if m["type"] == "hop"] == [1, 2, 3, 4, 5]
        client.close()


SNAPS_2KB = [snapshot(i, size_kb=2) for i in range(50)]


def test_a_client_that_never_reads_never_blocks_publish_and_its_drops_are_counted(address: str) -> None:
    max_queue = 32
    srv = TelemetryServer(address, max_queue=max_queue)
    srv.start()
    try:
        stuck = raw_connect(srv, rcvbuf=4096)  # connects, then never reads
        wait_until(lambda: srv.stats["clients"] == 1, what="stuck client accepted")
        (stuck_name,) = srv.stats["per_client"]
        assert all(1900 < len(encode_line(s)) < 2300 for s in SNAPS_2KB)
        # 20,000 on the Unix socket (the default transport); TCP's kernel buffers hold ~1,500 of these, so
        # 8,000 drive it just as deep into dropping while keeping the file's run time down.
        n_publish = 20_000 if parse_address(address).kind == "unix" else 8_000
        worst_queue = 0

        def publish_all() -> None:
            nonlocal worst_queue
            for i in range(n_publish):
                srv.publish(SNAPS_2KB[i % 50])
                if i % 500 == 0:
                    worst_queue = max(worst_queue, srv.stats["per_client"][stuck_name]["queued"])

        publisher = threading.Thread(target=publish_all, daemon=True)
        publisher.start()
        publisher.join(timeout=60)
        # A publisher that waited on the stuck client would still be blocked here: its socket is full for good.
        assert not publisher.is_alive(), "publish() blocked on a client that does not read"
        stats = srv.stats
        mine = stats["per_client"][stuck_name]
        assert stats["published"] == n_publish
        assert worst_queue <= max_queue and mine["queued"] <= max_queue  # memory stays bounded
        assert mine["dropped"] >= n_publish // 2  # the kernel buffers hold at most ~2,000 of these
        # every snapshot offered to the stuck client is accounted for: sent, dropped, queued or being written
        assert mine["offered"] == n_publish
        assert mine["sent"] - 1 + mine["dropped"] + mine["queued"] + mine["in_flight"] == n_publish  # -1: hello
        assert stats["dropped"] == mine["dropped"]

        # When the stuck client finally reads: hello first, then strictly newer snapshots ending with the last
        # one published (drop-oldest never drops the newest).
        stuck.settimeout(5)
        buf = b""
        while not buf.endswith(b"\n") or json.loads(buf.rsplit(b"\n", 2)[-2]).get("pub_seq") != n_publish:
            chunk = stuck.recv(1 << 20)
            assert chunk, "server closed the stuck client"
            buf += chunk
        messages = [json.loads(line) for line in buf.splitlines()]
        assert messages[0]["type"] == "hello"
        seqs = [m["pub_seq"] for m in messages[1:]]
        assert seqs == sorted(set(seqs)) and seqs[-1] == n_publish
        stuck.close()
        wait_until(lambda: srv.stats["clients"] == 0, what="the closed client removed")
    finally:
        srv.close()


def test_a_reading_client_keeps_getting_the_newest_snapshots_beside_a_stuck_one(server: TelemetryServer) -> None:
    stuck = raw_connect(server, rcvbuf=4096)
    reader = TelemetryClient(server.address)
    reader.connect(timeout=5)
    wait_until(lambda: server.stats["clients"] == 2, what="both clients accepted")
    received: list[int] = []

    def read_all() -> None:
        received.extend(message["pub_seq"] for message in reader.snapshots())

    reader_thread = threading.Thread(target=read_all, daemon=True)
    reader_thread.start()
    n_publish = 3000
    for i in range(n_publish):
        server.publish(SNAPS_2KB[i % 50])
    wait_until(lambda: server.stats["per_client"][reader.hello["client"]]["queued"] == 0, what="reader drained")
    reader.close()
    reader_thread.join(timeout=5)
    assert received and received[-1] == n_publish
    assert received == sorted(set(received))
    assert reader.missed == n_publish - len(received)  # gaps in pub_seq are exactly what it missed
    stuck.close()


def test_events_are_not_dropped_behind_a_snapshot_flood(server: TelemetryServer) -> None:
    sock = raw_connect(server, rcvbuf=4096)
    wait_until(lambda: server.stats["clients"] == 1, what="client accepted")
    for hop in range(2000):
        server.publish(SNAPS_2KB[hop % 50])
    server.publish_event("estop_latched", "keyboard")
    for hop in range(2000):  # a flood after it too: in a drop-oldest queue shared with hops it would be lost
        server.publish(SNAPS_2KB[hop % 50])
    sock.settimeout(2)
    buf = b""
    # read until the event's whole line has arrived (a read can end in the middle of it)
    while b'"estop_latched"' not in buf or b"\n" not in buf[buf.find(b'"estop_latched"') :]:
        chunk = sock.recv(1 << 16)
        assert chunk
        buf += chunk
    messages = [json.loads(line) for line in buf.split(b"\n")[:-1]]
    assert any(m["type"] == "event" and m["kind"] == "estop_latched" for m in messages)
    assert server.stats["dropped"] > 0  # snapshots were dropped, the event was not
    sock.close()


# ----------------------------------------------------------------------------------------------- control


def test_control_requests_round_trip_with_acks(server: TelemetryServer) -> None:
    with TelemetryClient(server.address) as client:
        client.connect(timeout=5)
        sent = {
            client.send("arm"): ("arm", None),
            client.send("set_threshold", 0.7): ("set_threshold", 0.7),
            client.send("estop"): ("estop", None),
            client.send("clear_estop"): ("clear_estop", None),
            client.send("disarm"): ("disarm", None),
        }
        requests: list[ControlRequest] = []
        wait_until(lambda: requests.extend(server.poll_control()) or len(requests) == 5, what="5 requests")
        assert [(r.command, r.value) for r in requests] == list(sent.values())  # in the order sent
        assert {r.id for r in requests} == set(sent)
        assert all(r.client == client.hello["client"] for r in requests)
        assert all(r.received_at <= time.monotonic() for r in requests)
        for request in requests:
            server.acknowledge(request, request.command != "disarm", f"did {request.command}")
        for req_id, (command, _) in sent.items():
            ack = client.wait_ack(req_id, timeout=5)
            assert ack is not None and ack["type"] == "ack" and ack["command"] == command
            assert ack["ok"] is (command != "disarm") and ack["detail"] == f"did {command}"
        assert server.poll_control() == []  # each request is handed over once
        assert server.stats["control_received"] == 5


def test_acks_go_only_to_the_client_that_asked(server: TelemetryServer) -> None:
    asker, other = TelemetryClient(server.address), TelemetryClient(server.address)
    asker.connect(timeout=5)
    other.connect(timeout=5)
    req_id = asker.send("estop")
    (request,) = wait_until(server.poll_control, what="estop request")
    server.acknowledge(request, True, "latched")
    assert asker.wait_ack(req_id, timeout=5)["ok"] is True
    server.publish(snapshot(1))
    assert other.read(timeout=5)["type"] == "hop"  # the other client's next message is the hop, no ack
    asker.close()
    other.close()


MALFORMED = [
    (b"not json", None, "not JSON"),
    (b"\xff\xfe", None, "not UTF-8"),
    (b"[1, 2]", None, "JSON object"),
    (b'{"command": "arm"}', None, "id"),
    (b'{"id": true, "command": "arm"}', None, "id"),
    (b'{"id": 5, "command": "explode"}', 5, "unknown command"),
    (b'{"id": "t1", "command": "set_threshold"}', "t1", "numeric"),
    (b'{"id": 7, "command": "set_threshold", "value": "high"}', 7, "numeric"),
    (b'{"id": 8, "command": "set_threshold", "value": 1.5}', 8, "outside [0, 1]"),
    (b'{"id": 9, "command": "set_threshold", "value": NaN}', 9, "outside [0, 1]"),
    (b'{"id": 11, "command": "set_threshold", "value": 1' + b"0" * 400 + b"}", 11, "outside [0, 1]"),
    (b"[" * 10_000 + b"]" * 10_000, None, "not JSON"),
]


def test_malformed_control_lines_get_a_refusing_ack_and_the_server_keeps_serving(server: TelemetryServer) -> None:
    sock = raw_connect(server)
    assert read_lines(sock, 1)[0]["type"] == "hello"
    sock.sendall(b"".join(line + b"\n" for line, _, _ in MALFORMED))
    acks = read_lines(sock, len(MALFORMED))
    assert len(acks) == len(MALFORMED)
    for ack, (line, expected_id, reason) in zip(acks, MALFORMED, strict=True):
        assert ack["type"] == "ack" and ack["ok"] is False, line
        assert ack["id"] == expected_id and reason in ack["detail"], (line, ack)
    # an over-long line without a newline is refused once, then skipped up to its newline
    sock.sendall(b"x" * (MAX_CONTROL_LINE + 10))
    (ack,) = read_lines(sock, 1)
    assert ack["ok"] is False and "longer than" in ack["detail"]
    sock.sendall(b"y" * 100 + b"\n" + b'{"id": 10, "command": "estop", "value": 3}\r\n')
    (request,) = wait_until(server.poll_control, what="the valid request after the junk")
    assert (request.id, request.command, request.value) == (10, "estop", None)  # an e-stop ignores extra fields
    assert server.stats["control_rejected"] == len(MALFORMED) + 1
    sock.close()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_any_control_line_parses_to_a_request_or_a_rejection(line: bytes) -> None:
    parsed = parse_control_line(line, "c", 1.0)
    assert isinstance(parsed, ControlRequest | ControlRejection)
    if isinstance(parsed, ControlRequest):
        assert parsed.command in COMMANDS
        assert parsed.value is None or 0.0 <= parsed.value <= 1.0


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(st.integers(-(2**40), 2**40), st.text(max_size=20)),
    st.sampled_from(COMMANDS),
    st.floats(0, 1),
)
def test_every_well_formed_request_is_accepted(req_id: int | str, command: str, value: float) -> None:
    line = json.dumps({"id": req_id, "command": command, "value": value}).encode()
    parsed = parse_control_line(line, "c", 1.0)
    assert isinstance(parsed, ControlRequest) and parsed.id == req_id and parsed.command == command
    assert parsed.value == (value if command == "set_threshold" else None)


# --------------------------------------------------------------------------------------------- lifecycle


def test_a_client_that_disconnects_is_removed(server: TelemetryServer) -> None:
    client = TelemetryClient(server.address)
    client.connect(timeout=5)
    assert server.stats["clients"] == 1
    client.close()
    wait_until(lambda: server.stats["clients"] == 0, what="client removed")
    server.publish(snapshot(1))  # nobody left: still fine
    assert server.stats["published"] == 1


def test_close_says_bye_ends_the_client_stream_and_is_idempotent(address: str) -> None:
    srv = TelemetryServer(address)
    srv.start()
    client = TelemetryClient(srv.address)
    client.connect(timeout=5)
    for hop in range(3):
        srv.publish(snapshot(hop))
    srv.close()
    srv.close()
    messages = list(client.messages())
    assert [m["type"] for m in messages] == ["hop", "hop", "hop", "bye"]  # queued snapshots flushed first
    with pytest.raises(TelemetryDisconnected):
        client.read(timeout=1)
    srv.publish(snapshot(9))  # after close: ignored, never raises
    if parse_address(address).kind == "unix":
        assert not os.path.exists(address)
    client.close()


def test_close_stops_every_thread_even_with_a_stuck_client(address: str) -> None:
    before = set(threading.enumerate())
    srv = TelemetryServer(address, max_queue=4)
    srv.start()
    stuck = raw_connect(srv, rcvbuf=4096)
    reader = TelemetryClient(srv.address)
    reader.connect(timeout=5)
    for i in range(500):
        srv.publish(SNAPS_2KB[i % 50])
    t0 = time.monotonic()
    srv.close(timeout=0.2)
    assert time.monotonic() - t0 < 3  # the stuck client gets its drain time, not more
    wait_until(
        lambda: not [t for t in set(threading.enumerate()) - before if t.name.startswith("telemetry")],
        what="this server's threads end",
    )
    stuck.close()
    reader.close()


def test_clients_beyond_max_clients_are_told_why(server_address_unix: str) -> None:
    with TelemetryServer(server_address_unix, max_clients=1) as srv:
        first = TelemetryClient(srv.address)
        first.connect(timeout=5)
        with pytest.raises(TelemetryUnavailable, match=r"too many clients \(max 1\)"):
            TelemetryClient(srv.address).connect(timeout=5)
        assert srv.stats["clients_refused"] == 1 and srv.stats["clients"] == 1
        first.close()


def test_a_client_reconnects_when_the_runtime_restarts_on_the_same_socket(server_address_unix: str) -> None:
    first = TelemetryServer(server_address_unix)
    first.start()
    client = TelemetryClient(server_address_unix)
    client.connect(timeout=5)
    for hop in range(5):
        first.publish(snapshot(hop))
    first.close()
    assert [m["type"] for m in client.messages()][-1] == "bye"
    assert not client.connected
    with TelemetryServer(server_address_unix) as second:
        second.set_hello({"run": 2})
        assert client.connect(timeout=5)["run"] == 2
        second.publish(snapshot(0))
        assert client.read(timeout=5)["pub_seq"] == 1
        assert client.missed == 0
    client.close()


def test_connect_to_nothing_fails_clearly_within_its_timeout(short_dir: Path) -> None:
    client = TelemetryClient(str(short_dir / "nobody.sock"))
    t0 = time.monotonic()
    with pytest.raises(TelemetryUnavailable, match="no telemetry server at"):
        client.connect(timeout=0.3)
    assert time.monotonic() - t0 < 3


def test_client_refuses_a_server_of_another_version(short_dir: Path) -> None:
    path = str(short_dir / "future.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)

    def serve() -> None:
        conn, _ = listener.accept()
        conn.sendall(b'{"v": 99, "type": "hello"}\n')
        conn.recv(1)
        conn.close()

    threading.Thread(target=serve, daemon=True).start()
    with pytest.raises(TelemetryProtocolError, match="version 99"):
        TelemetryClient(path).connect(timeout=5)
    listener.close()


# ---------------------------------------------------------------------------------------------- addresses


def test_an_existing_regular_file_at_the_socket_path_is_refused_and_left_untouched(short_dir: Path) -> None:
    path = short_dir / "precious.sock"
    path.write_text("the user's notes\n")
    with pytest.raises(UserError, match="exists and is not a socket"):
        TelemetryServer(str(path))
    assert path.read_text() == "the user's notes\n"


def test_a_live_socket_is_in_use_and_keeps_working(short_dir: Path) -> None:
    path = str(short_dir / "live.sock")
    first = TelemetryServer(path)
    first.start()
    try:
        with pytest.raises(UserError, match=r"telemetry address .* is in use"):
            TelemetryServer(path)
        with TelemetryClient(path) as client:  # the first server still owns its socket
            assert client.connect(timeout=5)["type"] == "hello"
    finally:
        first.close()
    assert not os.path.exists(path)


def test_a_stale_socket_is_replaced(short_dir: Path) -> None:
    path = str(short_dir / "stale.sock")
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(path)  # a socket file left behind by a process that died
    dead.close()
    assert os.path.exists(path)
    with TelemetryServer(path) as srv, TelemetryClient(path) as client:
        assert client.connect(timeout=5)["type"] == "hello"
        assert oct(os.stat(path).st_mode & 0o777) == oct(0o600)  # only its owner may arm the hand
        assert srv.stats["clients"] == 1
    assert not os.path.exists(path)


def test_close_leaves_a_file_that_replaced_its_socket(short_dir: Path) -> None:
    path = short_dir / "swapped.sock"
    srv = TelemetryServer(str(path))
    path.unlink()
    path.write_text("not ours")
    srv.close()
    assert path.read_text() == "not ours"


def test_tcp_port_zero_reports_the_real_port_and_a_busy_port_is_refused() -> None:
    with TelemetryServer("127.0.0.1:0") as srv:
        host, port = srv.address.rsplit(":", 1)
        assert host == "127.0.0.1" and int(port) > 0
        with pytest.raises(UserError, match=rf"telemetry address 127\.0\.0\.1:{port} is in use"):
            TelemetryServer(srv.address)


def test_a_non_loopback_tcp_address_needs_allow_remote() -> None:
    with pytest.raises(UserError, match="not a loopback address"):
        TelemetryServer("0.0.0.0:0")
    with TelemetryServer("0.0.0.0:0", allow_remote=True) as srv:
        assert srv.address.startswith("0.0.0.0:")


@pytest.mark.parametrize(
    ("text", "kind", "where"),
    [
        ("/tmp/mode2.sock", "unix", "/tmp/mode2.sock"),
        ("run/telemetry", "unix", os.path.abspath("run/telemetry")),
        ("mode2.sock", "unix", os.path.abspath("mode2.sock")),
        ("localhost:8765", "tcp", "127.0.0.1:8765"),
        (":8765", "tcp", "127.0.0.1:8765"),
        ("8765", "tcp", "127.0.0.1:8765"),
        ("[::1]:8765", "tcp", "[::1]:8765"),
        ("127.0.0.1:0", "tcp", "127.0.0.1:0"),
    ],
)
def test_parse_address_accepts_paths_and_host_port(text: str, kind: str, where: str) -> None:
    parsed = parse_address(text)
    assert parsed.kind == kind and str(parsed) == where


@pytest.mark.parametrize("text", ["", "   ", "host:", "host:abc", "localhost:70000", "justaname"])
def test_parse_address_refuses_nonsense_with_a_user_error(text: str) -> None:
    with pytest.raises(UserError, match="telemetry address"):
        parse_address(text)


def test_a_socket_path_in_a_missing_directory_or_too_long_is_a_user_error(short_dir: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        TelemetryServer(str(short_dir / "no" / "such.sock"))
    with pytest.raises(UserError, match="longer than"):
        TelemetryServer(str(short_dir / ("x" * 120 + ".sock")))


def test_reserved_keys_in_a_snapshot_are_a_bug_not_silently_overwritten(server: TelemetryServer) -> None:
    with pytest.raises(ValueError, match="reserved"):
        server.publish({"pub_seq": 3})
    with pytest.raises(TypeError, match="not JSON serialisable"):
        server.publish({"obj": object()})
