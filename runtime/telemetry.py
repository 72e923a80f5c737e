"""Telemetry and control: the runtime's per-hop snapshots out, arm/e-stop/threshold requests in.

Line-delimited JSON over a local socket (a Unix socket path, or HOST:PORT on loopback). The schema lives
in docs/TELEMETRY.md; the constants below are its single source in code.

The one rule that shapes this module: **a consumer can never delay the runtime**. `publish()` only
serialises the snapshot once and appends the bytes to each client's bounded queue (dropping that client's
oldest snapshot when the queue is full, and counting it); it never touches a socket. Each client has its
own writer thread doing non-blocking sends, so a frozen dashboard stalls only its own queue. Hello, ack,
event and bye messages travel in a second small per-client queue that is sent first, so a flood of
snapshots never pushes an e-stop acknowledgement out. One I/O thread accepts clients and reads their
control lines; malformed lines are answered with `ok: false` and never raise.

The control channel has no authentication: anyone who can connect can arm the hand. So Unix sockets are
created mode 0600 and TCP binds to loopback unless `allow_remote=True` is passed on purpose.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import ipaddress
import itertools
import json
import logging
import math
import os
import selectors
import socket
import stat
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from firmware_bridge.errors import UserError

log = logging.getLogger(__name__)

TELEMETRY_VERSION = 1
"""Bumped only on incompatible changes; new fields and new message types do not bump it (ignore them)."""

COMMANDS = ("arm", "disarm", "estop", "clear_estop", "set_threshold")
GATE_STATES = ("ACTIVE", "HOLD", "SAFE", "ESTOP")
MESSAGE_TYPES = ("hello", "hop", "event", "ack", "bye")
RESERVED_KEYS = frozenset({"v", "type", "pub_seq"})
"""Keys the server writes itself on every broadcast message; a snapshot or hello may not carry them."""

MAX_CONTROL_LINE = 64 * 1024  # bytes; a longer control line is refused (and skipped up to its newline)
MAX_PENDING_CONTROL = 256  # requests waiting for poll_control(); beyond that new ones are refused
URGENT_QUEUE_FACTOR = 4  # the hello/ack/event queue holds this many × max_queue messages
_UNIX_PATH_MAX = 107  # sun_path is 108 bytes with the terminating NUL on Linux


class TelemetryUnavailable(UserError, ConnectionError):
    """No telemetry server answers at the address (not started yet, stopped, or a wrong address)."""


class TelemetryDisconnected(ConnectionError):
    """The server closed the connection (runtime stopped or restarted)."""


class TelemetryProtocolError(UserError, ValueError):
    """The peer speaks another telemetry version or sent something that is not a telemetry line."""


# ---------------------------------------------------------------------------------------------- addresses


@dataclass(frozen=True)
class TelemetryAddress:
    kind: Literal["unix", "tcp"]
    path: str = ""  # unix
    host: str = ""  # tcp (numeric or a name)
    port: int = 0  # tcp; 0 = pick a free port

    def __str__(self) -> str:
        if self.kind == "unix":
            return self.path
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_address(address: str) -> TelemetryAddress:
    """`PATH` (contains "/" or ends in .sock) → Unix socket; `HOST:PORT`, `:PORT` or `PORT` → TCP.

    An empty host means loopback (127.0.0.1); IPv6 hosts go in brackets (`[::1]:8765`).
    """
    text = address.strip()
    if not text:
        raise UserError("telemetry address is empty: give a Unix socket path (e.g. /tmp/mode2.sock) or HOST:PORT")
    if "/" in text or text.endswith(".sock"):
        return TelemetryAddress("unix", path=os.path.abspath(os.path.expanduser(text)))
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = "", text
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not port_text.isdigit():
        raise UserError(
            f"telemetry address {address!r} is neither a Unix socket path (containing '/' or ending in .sock) "
            "nor HOST:PORT with a numeric port"
        )
    port = int(port_text)
    if port > 65535:
        raise UserError(f"telemetry address {address!r}: port {port} is out of range 0-65535")
    if host in ("", "localhost"):
        host = "127.0.0.1"
    return TelemetryAddress("tcp", host=host, port=port)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise UserError(f"telemetry address: cannot resolve host {host!r} ({exc.strerror or exc})") from exc
    return all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos)


# ------------------------------------------------------------------------------------------- serialising


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "f":
            finite = np.isfinite(value)
            if not finite.all():  # NaN/inf → null here, vectorised (e.g. targets are NaN when nothing was sent)
                out = value.astype(object)
                out[~finite] = None
                return out.tolist()
        return value.tolist()
    if isinstance(value, np.floating):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, enum.Enum):
        return value.value
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"telemetry: {type(value).__name__} is not JSON serialisable")


def _finite(value: Any) -> Any:
    """The same structure with NaN/±inf replaced by None (JSON has no NaN; most parsers reject it)."""
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.ndarray):
        return _finite(value.tolist())
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def encode_line(message: Mapping[str, Any]) -> bytes:
    """One message → one JSON line (ASCII, so valid UTF-8). numpy values become lists/numbers, NaN → null."""
    try:
        text = json.dumps(message, separators=(",", ":"), allow_nan=False, default=_json_default)
    except ValueError:  # a NaN or inf somewhere: the slow path, only when it happens
        text = json.dumps(_finite(message), separators=(",", ":"), allow_nan=False, default=_json_default)
    return text.encode("ascii") + b"\n"


# --------------------------------------------------------------------------------------------- control


@dataclass(frozen=True)
class ControlRequest:
    id: str | int
    command: str  # one of COMMANDS
    value: float | None  # set_threshold only
    client: str  # the connection that sent it (acknowledge() answers there)
    received_at: float  # time.monotonic() when the line was read


@dataclass(frozen=True)
class ControlRejection:
    id: str | int | None  # echoed when the line carried a usable one
    reason: str


def parse_control_line(line: bytes, client: str = "", received_at: float = 0.0) -> ControlRequest | ControlRejection:
    """Validate one control line (without its newline). Never raises: bad input becomes a rejection."""
    try:
        obj = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError:
        return ControlRejection(None, "control line is not UTF-8")
    except (ValueError, RecursionError):
        return ControlRejection(None, "control line is not JSON")
    if not isinstance(obj, dict):
        return ControlRejection(None, f"control line must be a JSON object, got {type(obj).__name__}")
    req_id = obj.get("id")
    usable_id = req_id if (isinstance(req_id, str | int) and not isinstance(req_id, bool)) else None
    if usable_id is None:
        return ControlRejection(None, 'control line needs an "id" (a string or an integer) to acknowledge')
    command = obj.get("command")
    if command not in COMMANDS:
        shown = command if isinstance(command, str) else type(command).__name__
        return ControlRejection(usable_id, f"unknown command {shown!r} (known: {', '.join(COMMANDS)})")
    value: float | None = None
    if command == "set_threshold":
        raw = obj.get("value")
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            return ControlRejection(usable_id, 'set_threshold needs a numeric "value" in [0, 1]')
        try:
            value = float(raw)
        except OverflowError:  # an integer with hundreds of digits
            return ControlRejection(usable_id, "set_threshold value is outside [0, 1]")
        if not (math.isfinite(value) and 0.0 <= value <= 1.0):
            return ControlRejection(usable_id, f"set_threshold value {raw!r} is outside [0, 1]")
    # Other commands ignore "value" and unknown keys: an e-stop is never refused for an extra field.
    return ControlRequest(usable_id, command, value, client, received_at)


# ---------------------------------------------------------------------------------------------- server


class _Client:
    """One connection: its two bounded queues, counters, and the writer thread that drains them."""

    def __init__(self, name: str, sock: socket.socket, max_queue: int) -> None:
        self.name = name
        self.sock = sock
        self.max_queue = max_queue
        self.max_urgent = max_queue * URGENT_QUEUE_FACTOR
        self.cond = threading.Condition()
        self.hops: deque[bytes] = deque()
        self.urgent: deque[bytes] = deque()  # hello, ack, event, bye: sent before any queued hop
        self.closed = False  # no more writing (connection gone or server closing hard)
        self.draining = False  # finish what is queued, then stop (graceful close)
        self.offered = 0  # hop messages handed to this client
        self.sent = 0  # messages of any type fully written
        self.dropped = 0  # hop messages dropped (queue full)
        self.dropped_urgent = 0
        self.in_flight = 0  # 1 while the writer holds a popped hop message
        self.connected_at = time.time()
        self.rbuf = bytearray()
        self.discarding = False  # skipping the rest of an over-long control line
        self.thread: threading.Thread | None = None

    def offer_hop(self, line: bytes) -> None:
        with self.cond:
            if self.closed or self.draining:
                return
            self.offered += 1
            if len(self.hops) >= self.max_queue:
                self.hops.popleft()
                self.dropped += 1
            self.hops.append(line)
            self.cond.notify()

    def offer_urgent(self, line: bytes) -> None:
        with self.cond:
            if self.closed:
                return
            if len(self.urgent) >= self.max_urgent:
                self.urgent.popleft()
                self.dropped_urgent += 1
            self.urgent.append(line)
            self.cond.notify()

    def finish(self, bye: bytes) -> None:
        """Graceful close: send what is queued, then `bye`, then stop."""
        with self.cond:
            if self.closed or self.draining:
                return
            self.hops.append(bye)
            self.draining = True
            self.cond.notify()

    def stats(self) -> dict[str, Any]:
        with self.cond:
            return {
                "queued": len(self.hops),
                "queued_urgent": len(self.urgent),
                "offered": self.offered,
                "sent": self.sent,
                "dropped": self.dropped,
                "dropped_urgent": self.dropped_urgent,
                "in_flight": self.in_flight,
                "connected_at": self.connected_at,
            }


class TelemetryServer:
    """Publish per-hop snapshots to any number of local clients and collect their control requests.

    The socket is bound in the constructor, so a bad or busy address fails (UserError) before the runtime
    opens anything else; `start()` starts the threads. `address` is the real address (TCP port 0 → the
    port the system chose).
    """

    def __init__(self, address: str, *, max_queue: int = 64, max_clients: int = 8, allow_remote: bool = False) -> None:
        if max_queue < 1:
            raise ValueError("max_queue must be ≥ 1")
        self.requested_address = address
        self.max_queue = max_queue
        self.max_clients = max_clients
        self._parsed = parse_address(address)
        self._lock = threading.Lock()
        self._clients: dict[str, _Client] = {}
        self._client_ids = itertools.count(1)
        self._control: deque[ControlRequest] = deque()
        self._hello: dict[str, Any] = {}
        self._counts = {
            "published": 0,
            "events": 0,
            "clients_total": 0,
            "clients_refused": 0,
            "control_received": 0,
            "control_rejected": 0,
            "acks_undeliverable": 0,
        }
        # counters of clients that have gone, so totals never go backwards
        self._gone = {"sent": 0, "dropped": 0, "dropped_urgent": 0}
        self._started = False
        self._closed = False
        self._io_thread: threading.Thread | None = None
        self._created_inode: tuple[int, int] | None = None
        self._listener = self._bind_unix(self._parsed) if self._parsed.kind == "unix" else self._bind_tcp(allow_remote)
        self._listener.setblocking(False)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.address = self._real_address()

    # -- binding ----------------------------------------------------------------------------------------

    def _bind_unix(self, addr: TelemetryAddress) -> socket.socket:
        path = addr.path
        shown = f"telemetry address {path}"
        if len(os.fsencode(path)) > _UNIX_PATH_MAX:
            raise UserError(f"{shown}: path is longer than {_UNIX_PATH_MAX} bytes, the limit for a Unix socket")
        parent = os.path.dirname(path)
        if not os.path.isdir(parent):
            raise UserError(f"{shown}: directory {parent} does not exist")
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            st = None
        if st is not None:
            if not stat.S_ISSOCK(st.st_mode):
                raise UserError(f"{shown} exists and is not a socket; refusing to replace it (choose another path)")
            if self._unix_listener_alive(path):
                raise UserError(f"{shown} is in use (another process is listening there)")
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)  # a stale socket left by a process that died
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(path)
            # Before listen(), nobody can connect: tighten the mode first (the channel can arm the hand).
            os.chmod(path, 0o600)
            st = os.lstat(path)
            self._created_inode = (st.st_dev, st.st_ino)
            sock.listen(8)
        except OSError as exc:
            sock.close()
            self._remove_socket_file()
            if exc.errno == errno.EADDRINUSE:  # someone bound it between our check and our bind
                raise UserError(f"{shown} is in use") from exc
            raise UserError(f"{shown}: cannot listen there ({exc.strerror or exc})") from exc
        return sock

    @staticmethod
    def _unix_listener_alive(path: str) -> bool:
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(0.5)
        try:
            probe.connect(path)
        except (ConnectionRefusedError, FileNotFoundError):
            return False
        except TimeoutError:
            return True  # its backlog is full: very much alive
        except OSError as exc:
            raise UserError(f"telemetry address {path}: cannot check the existing socket ({exc.strerror})") from exc
        finally:
            probe.close()
        return True

    def _bind_tcp(self, allow_remote: bool) -> socket.socket:
        addr = self._parsed
        shown = f"telemetry address {addr}"
        if not allow_remote and not _is_loopback(addr.host):
            raise UserError(
                f"{shown} is not a loopback address: the control channel can arm the hand and has no "
                "authentication. Bind to 127.0.0.1 and tunnel (ssh -L) to watch from another machine"
            )
        try:
            infos = socket.getaddrinfo(addr.host, addr.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        except OSError as exc:
            raise UserError(f"{shown}: cannot resolve host {addr.host!r} ({exc.strerror or exc})") from exc
        family, socktype, proto, _, sockaddr = infos[0]
        sock = socket.socket(family, socktype, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # restart right after a stop
            sock.bind(sockaddr)
            sock.listen(8)
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE:
                raise UserError(f"{shown} is in use (another process is listening on that port)") from exc
            raise UserError(f"{shown}: cannot listen there ({exc.strerror or exc})") from exc
        return sock

    def _real_address(self) -> str:
        if self._parsed.kind == "unix":
            return self._parsed.path
        host, port = self._listener.getsockname()[:2]
        return str(TelemetryAddress("tcp", host=host, port=port))

    def _remove_socket_file(self) -> None:
        """Unlink the socket file only if it is still the one this server created."""
        if self._created_inode is None:
            return
        try:
            st = os.lstat(self._parsed.path)
            if stat.S_ISSOCK(st.st_mode) and (st.st_dev, st.st_ino) == self._created_inode:
                os.unlink(self._parsed.path)
        except FileNotFoundError:
            pass
        self._created_inode = None

    # -- public API -------------------------------------------------------------------------------------

    def set_hello(self, fields: Mapping[str, Any]) -> None:
        """What every client hears first (model sha256 and metadata summary, hand config, hop, ...).

        Clients already connected receive the new hello too.
        """
        bad = RESERVED_KEYS.intersection(fields)
        if bad:
            raise ValueError(f"hello fields may not use the reserved keys {sorted(bad)}")
        encode_line(fields)  # fail here, on the caller's line, if something is not serialisable
        with self._lock:
            self._hello = dict(fields)
            clients = list(self._clients.values())
        for client in clients:
            client.offer_urgent(self._hello_line(client.name))

    def start(self) -> None:
        if self._closed:
            raise RuntimeError("telemetry server is closed")
        if self._started:
            return
        self._started = True
        self._io_thread = threading.Thread(target=self._io_loop, name="telemetry-io", daemon=True)
        self._io_thread.start()

    def publish(self, snapshot: Mapping[str, Any]) -> None:
        """Queue one hop snapshot for every client. Never blocks on a client; never does socket I/O."""
        if not RESERVED_KEYS.isdisjoint(snapshot):
            raise ValueError(f"snapshot may not carry the reserved keys {sorted(RESERVED_KEYS & set(snapshot))}")
        body = encode_line(snapshot)  # first, so a snapshot that cannot be encoded consumes no pub_seq
        with self._lock:  # pub_seq and the clients that get it are decided together (hello: last_pub_seq)
            if self._closed:
                return
            self._counts["published"] += 1
            pub_seq = self._counts["published"]
            clients = list(self._clients.values())
        head = b'{"v":%d,"type":"hop","pub_seq":%d' % (TELEMETRY_VERSION, pub_seq)
        line = head + (b"," + body[1:] if len(body) > 3 else b"}\n")  # body is b"{...}\n"
        for client in clients:
            client.offer_hop(line)

    def publish_event(self, kind: str, detail: str = "", data: Mapping[str, Any] | None = None) -> None:
        """Broadcast an event (e-stop latched, armed, threshold changed, link lost, ...). Not dropped behind hops."""
        message: dict[str, Any] = {"v": TELEMETRY_VERSION, "type": "event", "kind": kind, "detail": detail}
        message["wall"] = time.time()
        if data:
            message["data"] = dict(data)
        line = encode_line(message)
        with self._lock:
            if self._closed:
                return
            self._counts["events"] += 1
            clients = list(self._clients.values())
        for client in clients:
            client.offer_urgent(line)

    def poll_control(self) -> list[ControlRequest]:
        """Control requests received since the last call, oldest first (non-blocking)."""
        with self._lock:
            requests = list(self._control)
            self._control.clear()
        return requests

    def acknowledge(self, request: ControlRequest, ok: bool, detail: str = "") -> None:
        """Answer a request on the connection it came from (if that client is still there)."""
        self._ack(request.client, request.id, request.command, ok, detail)

    @property
    def stats(self) -> dict[str, Any]:
        with self._lock:
            clients = dict(self._clients)
            out: dict[str, Any] = dict(self._counts)
            gone = dict(self._gone)
        per_client = {name: client.stats() for name, client in clients.items()}
        out["clients"] = len(per_client)
        out["sent"] = gone["sent"] + sum(c["sent"] for c in per_client.values())
        out["dropped"] = gone["dropped"] + sum(c["dropped"] for c in per_client.values())
        out["dropped_urgent"] = gone["dropped_urgent"] + sum(c["dropped_urgent"] for c in per_client.values())
        out["per_client"] = per_client
        return out

    def close(self, timeout: float = 0.5) -> None:
        """Stop: say "bye", give writers up to `timeout` s to flush, then drop every connection. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            clients = list(self._clients.values())
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        if self._io_thread is not None:
            self._io_thread.join(timeout=2.0)
        bye = encode_line({"v": TELEMETRY_VERSION, "type": "bye", "reason": "server closing"})
        for client in clients:
            client.finish(bye)
        deadline = time.monotonic() + timeout
        for client in clients:
            if client.thread is not None:
                client.thread.join(timeout=max(0.0, deadline - time.monotonic()))
        for client in clients:
            self._drop_client(client)
        for client in clients:
            if client.thread is not None:
                client.thread.join(timeout=1.0)
        self._listener.close()
        self._wake_r.close()
        self._wake_w.close()
        self._remove_socket_file()

    def __enter__(self) -> TelemetryServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals --------------------------------------------------------------------------------------

    def _hello_line(self, client_name: str) -> bytes:
        message = {
            "v": TELEMETRY_VERSION,
            "type": "hello",
            "client": client_name,
            "max_queue": self.max_queue,
            "commands": list(COMMANDS),
            "gate_states": list(GATE_STATES),
            "last_pub_seq": self._counts["published"],  # the next hop this client gets has a greater pub_seq
            "wall": time.time(),
            **self._hello,
        }
        return encode_line(message)

    def _ack(self, client_name: str, req_id: Any, command: str | None, ok: bool, detail: str) -> None:
        line = encode_line(
            {"v": TELEMETRY_VERSION, "type": "ack", "id": req_id, "command": command, "ok": bool(ok), "detail": detail}
        )
        with self._lock:
            client = self._clients.get(client_name)
            if client is None:
                self._counts["acks_undeliverable"] += 1
                return
        client.offer_urgent(line)

    def _io_loop(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self._listener, selectors.EVENT_READ, None)
        sel.register(self._wake_r, selectors.EVENT_READ, None)
        try:
            while not self._closed:
                for key, _ in sel.select():
                    if key.fileobj is self._wake_r:
                        with contextlib.suppress(OSError):
                            self._wake_r.recv(4096)
                    elif key.fileobj is self._listener:
                        self._accept_all(sel)
                    else:
                        try:
                            self._read_client(sel, key.data)
                        except Exception:  # our bug: lose that client, never the control channel
                            log.exception("telemetry: dropping %s after an internal error", key.data.name)
                            with contextlib.suppress(KeyError, ValueError):
                                sel.unregister(key.fileobj)
                            self._drop_client(key.data)
        finally:
            for key in list(sel.get_map().values()):
                with contextlib.suppress(KeyError, ValueError):
                    sel.unregister(key.fileobj)
            sel.close()

    def _accept_all(self, sel: selectors.BaseSelector) -> None:
        while True:
            try:
                sock, peer = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # e.g. ECONNABORTED, EMFILE: keep serving the others
            sock.setblocking(False)
            if sock.family != socket.AF_UNIX:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no Nagle delay on small lines
            number = next(self._client_ids)
            name = f"client-{number}" if self._parsed.kind == "unix" else f"client-{number}@{peer[0]}:{peer[1]}"
            with self._lock:
                refuse = len(self._clients) >= self.max_clients or self._closed
                if refuse:
                    self._counts["clients_refused"] += 1
                else:
                    client = _Client(name, sock, self.max_queue)
                    self._clients[name] = client
                    self._counts["clients_total"] += 1
                    client.offer_urgent(self._hello_line(name))
            if refuse:
                line = encode_line(
                    {"v": TELEMETRY_VERSION, "type": "bye", "reason": f"too many clients (max {self.max_clients})"}
                )
                with contextlib.suppress(OSError):
                    sock.send(line)
                sock.close()
                continue
            sel.register(sock, selectors.EVENT_READ, client)
            client.thread = threading.Thread(target=self._write_loop, args=(client,), name=f"telemetry-{name}")
            client.thread.daemon = True
            client.thread.start()

    def _read_client(self, sel: selectors.BaseSelector, client: _Client) -> None:
        try:
            data = client.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the client closed (or its writer shut the socket after an error)
            with contextlib.suppress(KeyError, ValueError):
                sel.unregister(client.sock)
            self._drop_client(client)
            return
        now = time.monotonic()
        buf = client.rbuf
        buf += data
        while True:
            newline = buf.find(b"\n")
            if newline < 0:
                if len(buf) > MAX_CONTROL_LINE:
                    if not client.discarding:
                        self._reject(
                            client, ControlRejection(None, f"control line longer than {MAX_CONTROL_LINE} bytes")
                        )
                    client.discarding = True
                    buf.clear()
                return
            line = bytes(buf[:newline]).rstrip(b"\r")
            del buf[: newline + 1]
            if client.discarding:  # the tail of an over-long line
                client.discarding = False
                continue
            if not line.strip():
                continue
            self._handle_control(client, line, now)

    def _handle_control(self, client: _Client, line: bytes, now: float) -> None:
        parsed = parse_control_line(line, client.name, now)
        if isinstance(parsed, ControlRejection):
            self._reject(client, parsed)
            return
        with self._lock:
            full = len(self._control) >= MAX_PENDING_CONTROL
            if not full:
                self._control.append(parsed)
                self._counts["control_received"] += 1
        if full:
            self._reject(client, ControlRejection(parsed.id, "control queue full: the runtime is not taking requests"))

    def _reject(self, client: _Client, rejection: ControlRejection) -> None:
        with self._lock:
            self._counts["control_rejected"] += 1
        self._ack(client.name, rejection.id, None, False, rejection.reason)

    def _drop_client(self, client: _Client) -> None:
        """Forget a client (idempotent): stop its writer and close its socket."""
        with client.cond:
            already = client.closed
            client.closed = True
            client.cond.notify_all()
        with self._lock:
            if self._clients.get(client.name) is client:
                del self._clients[client.name]
                with client.cond:
                    self._gone["sent"] += client.sent
                    self._gone["dropped"] += client.dropped
                    self._gone["dropped_urgent"] += client.dropped_urgent
        if not already:
            with contextlib.suppress(OSError):
                client.sock.shutdown(socket.SHUT_RDWR)
            client.sock.close()

    def _write_loop(self, client: _Client) -> None:
        """Drain one client's queues with non-blocking sends; a stuck client blocks only this thread."""
        sel = selectors.DefaultSelector()
        try:
            sel.register(client.sock, selectors.EVENT_WRITE)
        except (ValueError, OSError):
            sel.close()
            return
        view: memoryview | None = None
        offset = 0
        is_hop = False
        try:
            while True:
                if view is None:
                    with client.cond:
                        while not (client.urgent or client.hops or client.closed or client.draining):
                            client.cond.wait()
                        if client.closed:
                            return
                        if client.urgent:
                            data, is_hop = client.urgent.popleft(), False
                        elif client.hops:
                            data, is_hop = client.hops.popleft(), True
                            client.in_flight = 1
                        else:  # draining and nothing left
                            return
                    view, offset = memoryview(data), 0
                try:
                    offset += client.sock.send(view[offset:])
                except (BlockingIOError, InterruptedError):
                    sel.select(timeout=0.25)  # wait until the client reads, re-checking `closed` regularly
                    with client.cond:
                        if client.closed:
                            return
                    continue
                except OSError:  # EPIPE, ECONNRESET, EBADF (closed under us): the client is gone
                    with contextlib.suppress(OSError):
                        client.sock.shutdown(socket.SHUT_RDWR)  # the I/O thread sees EOF and removes it
                    return
                if offset == len(view):
                    view = None
                    with client.cond:
                        client.sent += 1
                        if is_hop:
                            client.in_flight = 0
        except Exception:  # our bug: lose this client (the I/O thread removes it), never the publisher
            log.exception("telemetry: writer for %s failed", client.name)
            with contextlib.suppress(OSError):
                client.sock.shutdown(socket.SHUT_RDWR)
        finally:
            sel.close()


# ---------------------------------------------------------------------------------------------- client


class TelemetryClient:
    """A blocking client for dashboards, loggers and tests. Thread-safe: one thread may read while another
    sends and waits for acks."""

    def __init__(self, address: str, *, max_pending: int = 4096) -> None:
        self.address = address
        self._parsed = parse_address(address)
        self._sock: socket.socket | None = None
        self._sel: selectors.BaseSelector | None = None
        self._rbuf = bytearray()
        self._read_lock = threading.Lock()  # one thread at a time reads the socket
        self._send_lock = threading.Lock()
        self._cond = threading.Condition()  # guards everything below
        self._pending: deque[dict[str, Any]] = deque(maxlen=max_pending)
        self._acks: OrderedDict[Any, dict[str, Any]] = OrderedDict()
        self._ids = itertools.count(1)
        self._eof = False
        self._last_seq: int | None = None
        self.hello: dict[str, Any] | None = None
        self.events: deque[dict[str, Any]] = deque(maxlen=256)
        self.missed = 0  # hop messages this client did not get (gaps in "pub_seq": the server dropped them)

    def connect(self, timeout: float = 5.0) -> dict[str, Any]:
        """Connect (retrying until `timeout`, so the runtime may start after us) and read the hello.

        Also reconnects after the server went away; messages read before stay readable, in order.
        """
        if self._sock is not None:
            self.close()
        self._rbuf.clear()
        self._last_seq = None  # a restarted server counts pub_seq from 1 again
        deadline = time.monotonic() + timeout
        last_error: OSError | None = None
        while True:
            try:
                sock = self._open(max(0.05, deadline - time.monotonic()))
                break
            except OSError as exc:
                last_error = exc
            if time.monotonic() >= deadline:
                reason = last_error.strerror if last_error and last_error.strerror else str(last_error)
                raise TelemetryUnavailable(f"no telemetry server at {self.address} ({reason})") from last_error
            time.sleep(0.05)
        sock.settimeout(5.0)  # sends only; reads wait in the selector
        self._sock = sock
        self._sel = selectors.DefaultSelector()
        self._sel.register(sock, selectors.EVENT_READ)
        with self._cond:
            self._eof = False
        try:
            hello = self.read(timeout=max(0.5, deadline - time.monotonic()))
        except BaseException:
            self.close()
            raise
        if hello is None or hello.get("type") != "hello":
            self.close()
            reason = (hello or {}).get("reason", "no hello")
            raise TelemetryUnavailable(f"telemetry server at {self.address} did not accept us ({reason})")
        return hello

    def _open(self, timeout: float) -> socket.socket:
        if self._parsed.kind == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            try:
                sock.connect(self._parsed.path)
            except OSError:
                sock.close()
                raise
            return sock
        sock = socket.create_connection((self._parsed.host, self._parsed.port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # an e-stop line goes out at once
        return sock

    @property
    def connected(self) -> bool:
        with self._cond:
            return self._sock is not None and not self._eof

    def read(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next message of any type; None when `timeout` passes first. Raises TelemetryDisconnected
        when the server has gone (after every message it sent has been returned)."""
        return self._wait(lambda: self._pending.popleft() if self._pending else None, timeout, raise_on_eof=True)

    def messages(self) -> Iterator[dict[str, Any]]:
        """Every message until the server closes the connection."""
        while True:
            try:
                message = self.read(timeout=None)
            except TelemetryDisconnected:
                return
            if message is not None:
                yield message

    def snapshots(self) -> Iterator[dict[str, Any]]:
        """Hop snapshots until the server closes (events, acks and hellos are still recorded on the client)."""
        for message in self.messages():
            if message.get("type") == "hop":
                yield message

    def send(self, command: str, value: float | None = None) -> int:
        """Send a control request; returns its id for `wait_ack`."""
        if self._sock is None:
            raise TelemetryDisconnected(f"telemetry client for {self.address} is not connected")
        req_id = next(self._ids)
        line = json.dumps({"id": req_id, "command": command, "value": value}).encode() + b"\n"
        with self._send_lock:
            try:
                self._sock.sendall(line)
            except OSError as exc:
                raise TelemetryDisconnected(f"telemetry server at {self.address} has gone ({exc})") from exc
        return req_id

    def wait_ack(self, req_id: Any, timeout: float) -> dict[str, Any] | None:
        """The ack for `req_id`, or None if none arrives within `timeout` s (or the server goes)."""
        return self._wait(lambda: self._acks.pop(req_id, None), timeout, raise_on_eof=False)

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
        if self._sel is not None:
            self._sel.close()
            self._sel = None
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def __enter__(self) -> TelemetryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals --------------------------------------------------------------------------------------

    def _wait(self, take: Any, timeout: float | None, *, raise_on_eof: bool) -> Any:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._cond:
                found = take()
                if found is not None:
                    return found
                if self._eof:
                    if raise_on_eof:
                        raise TelemetryDisconnected(f"telemetry server at {self.address} closed the connection")
                    return None
            remaining = 0.1 if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                return None
            step = min(remaining, 0.1)
            if self._read_lock.acquire(blocking=False):
                try:
                    self._pump(step)
                finally:
                    self._read_lock.release()
            else:  # another thread is reading: it notifies when something arrives
                with self._cond:
                    found = take()
                    if found is not None:
                        return found
                    if not self._eof:
                        self._cond.wait(step)

    def _pump(self, timeout: float) -> None:
        sock, sel = self._sock, self._sel
        if sock is None or sel is None:
            with self._cond:
                self._eof = True
            return
        try:
            if not sel.select(timeout):
                return
            data = sock.recv(65536)
        except (BlockingIOError, InterruptedError, TimeoutError):
            return
        except (OSError, ValueError):
            data = b""
        if not data:
            with self._cond:
                self._eof = True
                self._cond.notify_all()
            return
        self._rbuf += data
        messages = []
        while True:
            newline = self._rbuf.find(b"\n")
            if newline < 0:
                break
            line = bytes(self._rbuf[:newline])
            del self._rbuf[: newline + 1]
            try:
                message = json.loads(line)
            except ValueError as exc:
                raise TelemetryProtocolError(
                    f"telemetry server at {self.address} sent a line that is not JSON"
                ) from exc
            if not isinstance(message, dict):
                raise TelemetryProtocolError(f"telemetry server at {self.address} sent a non-object line")
            messages.append(message)
        with self._cond:
            for message in messages:
                self._route(message)
            self._cond.notify_all()

    def _route(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "hello":
            if message.get("v") != TELEMETRY_VERSION:
                raise TelemetryProtocolError(
                    f"telemetry server at {self.address} speaks version {message.get('v')!r}; "
                    f"this client speaks {TELEMETRY_VERSION}"
                )
            self.hello = message
            if self._last_seq is None and isinstance(message.get("last_pub_seq"), int):
                self._last_seq = message["last_pub_seq"]
        elif kind == "ack":
            self._acks[message.get("id")] = message
            while len(self._acks) > 256:
                self._acks.popitem(last=False)
        elif kind == "event":
            self.events.append(message)
        elif kind == "hop":
            seq = message.get("pub_seq")
            if isinstance(seq, int):
                if self._last_seq is not None and seq > self._last_seq + 1:
                    self.missed += seq - self._last_seq - 1
                self._last_seq = seq
        self._pending.append(message)
