"""SVG snapshots of the dashboard's main states at 80×24 (pytest-textual-snapshot).

Every state is fed fixed messages and drawn from them only: wall clocks come from the messages (shown in
UTC here), so the SVGs are byte-stable. Regenerate after a deliberate change with
`.venv/bin/pytest tests/tui/test_snapshots.py --snapshot-update`, then look at them.
"""

from __future__ import annotations

import math
import time

import pytest
from dashboard_script import WALL0, ScriptedFeed, connected, event, hello, hop, settle

from tui.app import DashboardApp

SIZE = (80, 24)
HOPS = 60


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    # scripted feeds stop after their messages: no "NO DATA" banner while a slow machine settles the screen
    monkeypatch.setattr("tui.app.SILENT_S", math.inf)


def snapshot_of(snap_compare, messages: list[dict], hops: int) -> bool:
    feed = ScriptedFeed(messages)
    app = DashboardApp(feed, title="mode2 dashboard")
    app.render_hz = 1e-3  # no timer frames: the snapshot is drawn once, from the settled state

    async def settled(pilot) -> None:
        await settle(pilot, app, feed, hops)

    return snap_compare(app, terminal_size=SIZE, run_before=settled)


def test_active_gate(snap_compare) -> None:
    hops = [hop(i) for i in range(HOPS)]
    assert snapshot_of(snap_compare, [connected(), hello(), *hops], HOPS)


def test_gate_closed_with_a_reason(snap_compare) -> None:
    reason = "signal: channel 2: flat (0.4 µV RMS for 500 ms)"
    flags = [0, 0, 1, 0, 0, 0, 0, 0]
    hops = [hop(i) for i in range(HOPS - 10)]
    hops += [
        hop(i, state="HOLD", gate_reason=reason, active=False, command="hold", quality_flags=flags, quality_ok=False)
        for i in range(HOPS - 10, HOPS)
    ]
    assert snapshot_of(snap_compare, [connected(), hello(), *hops], HOPS)


def test_estop_latched(snap_compare) -> None:
    hops = [hop(i) for i in range(HOPS - 10)]
    latched = event("estop_latched", "control channel (client-1)", WALL0 + (HOPS - 10) * 0.05)
    closed = dict(state="ESTOP", gate_reason="e-stop latched", active=False, command="safe", armed=False, estop=True)
    hops += [hop(i, **closed, targets=[0.15, 0.2, 0.15, 0.15, 0.15, 0.15]) for i in range(HOPS - 10, HOPS)]
    ack = {"v": 1, "type": "ack", "id": 1, "command": "estop", "ok": True, "detail": "e-stop latched"}
    assert snapshot_of(snap_compare, [connected(), hello(), *hops[:50], latched, ack, *hops[50:]], HOPS)


def test_disconnected(snap_compare) -> None:
    hops = [hop(i) for i in range(HOPS)]
    lost = {"type": "status", "connected": False, "detail": "disconnected: runtime lost — reconnecting"}
    assert snapshot_of(snap_compare, [connected(), hello(), *hops, lost], HOPS)
