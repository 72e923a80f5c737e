"""Per-joint command bars: each hand channel's target as sent, within its limits from the hand config."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget


class JointBars(Widget):
    """One row per hand joint: name, a bar from min_rad to max_rad, the target in rad ("—" when none was sent)."""

    targets: reactive[tuple[float | None, ...]] = reactive(())
    """Command targets of the last hop (rad; None where nothing was sent)."""
    limits: reactive[tuple[tuple[str, float, float], ...]] = reactive(())
    """(name, min_rad, max_rad) per hand joint, from the hello's `hand.joints`."""

    def render(self) -> Text:
        if not self.limits:
            return Text("no hand config yet", style="dim")
        width = self.size.width
        name_w = min(10, max(len(name) for name, _, _ in self.limits), max(4, width - 12))
        bar_w = max(2, width - name_w - 7)
        out = Text()
        for i, (name, lo, hi) in enumerate(self.limits):
            value = self.targets[i] if i < len(self.targets) else None
            out.append(f"{name[:name_w]:<{name_w}} ")
            if value is None:
                out.append("·" * bar_w, style="grey35")
                out.append("     —", style="dim")
            else:
                span = hi - lo
                frac = 0.0 if span <= 0 else min(1.0, max(0.0, (value - lo) / span))
                filled = round(frac * bar_w)
                out.append("█" * filled, style="bold #5ac8f0")
                out.append("░" * (bar_w - filled), style="grey30")
                out.append(f" {value:5.2f}")
            if i < len(self.limits) - 1:
                out.append("\n")
        return out
