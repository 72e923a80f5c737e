"""The serial link to the hand: connected, device state, commands sent/acknowledged, gaps, faults, round trip."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from firmware_bridge.protocol import DeviceState, FaultCode


def device_state_name(state: int) -> str:
    try:
        return DeviceState(state).name
    except ValueError:
        return "unknown" if state < 0 else str(state)


def fault_names(bits: int) -> str:
    """The TELEMETRY `faults` bitmask (bit code−1 per fault code) as names."""
    names = [code.name.lower() for code in FaultCode if bits & (1 << (code - 1))]
    return ",".join(names) if names else f"0x{bits:x}"


class LinkPanel(Widget):
    """What the runtime knows about the serial link and the device on it."""

    link_state: reactive[str] = reactive("")
    """connected / reconnecting / none ("" when the feed does not know, e.g. a replay)."""
    device_state: reactive[int] = reactive(-1)
    """Last device TELEMETRY state (-1: unknown)."""
    sent: reactive[int | None] = reactive(None)
    """Commands sent since the runtime started (None: not known, e.g. a replay)."""
    acked: reactive[int] = reactive(0)
    """Commands the device acknowledged."""
    seq_gaps: reactive[int] = reactive(0)
    """Frames missing between consecutive commands' seq, as seen by this dashboard."""
    device_faults: reactive[int] = reactive(0)
    """Fault bits of the last device TELEMETRY."""
    rtt_ms: reactive[float | None] = reactive(None)
    """Last command round trip to the device."""

    def render(self) -> Text:
        out = Text()
        link = self.link_state or "—"
        out.append("link   ")
        out.append(link + "\n", style="green" if link == "connected" else "bold red" if link != "—" else "dim")
        dev = device_state_name(self.device_state)
        out.append("device ")
        out.append(dev + "\n", style="bold red" if dev == "ESTOP" else "")
        sent = "—" if self.sent is None else str(self.sent)
        out.append(f"acked  {self.acked}/{sent} sent\n")
        out.append("gaps   ")
        out.append(f"{self.seq_gaps}", style="bold red" if self.seq_gaps else "")
        out.append("  rtt " + ("—" if self.rtt_ms is None else f"{self.rtt_ms:.2f} ms") + "\n")
        out.append("faults ")
        faults = fault_names(self.device_faults) if self.device_faults else "none"
        out.append(faults, style="bold red" if self.device_faults else "")
        return out
