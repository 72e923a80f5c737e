"""The predicted hand, drawn in braille: the back view, and the side view too when there is room."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from tui.hand_projection import BACK, SIDE, draw_hand


class HandView(Widget):
    """21 joints projected and drawn; redrawn whenever `joints` changes."""

    joints: reactive[tuple[tuple[float, float, float], ...]] = reactive(())
    """Predicted joints of the last hop (m, wrist-relative, canonical hand frame), MANO order."""

    def render(self) -> Text | Table:
        width, height = self.size.width, self.size.height
        if not self.joints:
            return Text("no hand yet", style="dim")
        if width < 2 * height + 14:
            return draw_hand(self.joints, width, height, view=BACK)
        back_w = max(4, round(height * 0.75 * 2))
        grid = Table.grid(padding=(0, 1))
        grid.add_row(
            draw_hand(self.joints, back_w, height, view=BACK),
            draw_hand(self.joints, width - back_w - 1, height, view=SIDE),
        )
        return grid
