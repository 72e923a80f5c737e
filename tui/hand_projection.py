"""Draw the predicted hand: 21 joints (metres, wrist-relative, canonical hand frame) → 2-D → braille text.

The hand frame (docs/HAND_MODEL.md): right hand palm down, +x wrist → fingers, +y out of the back of the
hand, +z towards the little finger. Two views are offered: `BACK` looks down on the back of the hand
(tilted a little so a flexing finger curls down the screen instead of only getting shorter) and `SIDE`
looks from the thumb side, where flexion is plainest. A braille cell is 2 × 4 dots, so a W × H cell
canvas has 2W × 4H dots; each cell takes the colour of the finger that drew into it last.

No numpy here on purpose: 21 points and 20 bones per frame are cheaper in plain Python than the array
overhead, and it keeps this module importable on the smallest install.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from rich.style import Style
from rich.text import Text

# Parent of each of the 21 joints in MANO order (wrist, index1-3, middle1-3, pinky1-3, ring1-3, thumb1-3,
# then the tips of thumb, index, middle, ring, pinky). Copied from training/hand/skeleton.py
# (MANO_PARENTS followed by TIP_PARENTS); tui must not import training/, which needs torch.
PARENTS: tuple[int, ...] = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14, 15, 3, 6, 12, 9)

# Which finger each joint belongs to (0 thumb, 1 index, 2 middle, 3 ring, 4 little; the wrist counts as palm = 5),
# from the same MANO order: a bone is coloured by its child joint's finger.
FINGER_OF: tuple[int, ...] = (5, 1, 1, 1, 2, 2, 2, 4, 4, 4, 3, 3, 3, 0, 0, 0, 0, 1, 2, 3, 4)
FINGER_COLOURS: tuple[str, ...] = ("#ff8c5a", "#f0d050", "#7fd46a", "#5ac8f0", "#c08cf0", "#b0b0b0")

BACK = "back"
SIDE = "side"
_TILT = math.radians(35.0)  # the back view looks down at the hand from 35° towards the wrist

# braille dot bit for (column 0–1, row 0–3) inside a cell (Unicode braille patterns, U+2800 + bits)
_DOT_BITS = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))


@dataclass(frozen=True)
class Projected:
    """Screen-plane points (x right, y up, metres) of one view."""

    points: tuple[tuple[float, float], ...]


def project(joints: Sequence[Sequence[float]], view: str = BACK) -> Projected:
    """Project 21 × (x, y, z) joints to the screen plane of `view` (x right, y up, in metres)."""
    out: list[tuple[float, float]] = []
    cos_t, sin_t = math.cos(_TILT), math.sin(_TILT)
    for x, y, z in joints:
        if view == SIDE:
            # looking from the thumb side (−z): fingers point right, the back of the hand is up
            out.append((x, y))
        else:
            # looking down on the back: thumb on the left, fingers up; flexion (−y) curls downwards
            out.append((z, x * cos_t + y * sin_t))
    return Projected(tuple(out))


class BrailleCanvas:
    """A small dot raster, `width` × `height` cells, drawn into with lines and rendered as rich Text."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = max(1, width), max(1, height)
        self._bits = [[0] * self.width for _ in range(self.height)]
        self._colour: list[list[str | None]] = [[None] * self.width for _ in range(self.height)]

    @property
    def dots(self) -> tuple[int, int]:
        return self.width * 2, self.height * 4

    def set(self, x: int, y: int, colour: str | None = None) -> None:
        """Set dot (x, y), y counted down from the top; dots outside the canvas are ignored."""
        if 0 <= x < self.width * 2 and 0 <= y < self.height * 4:
            row, col = y // 4, x // 2
            self._bits[row][col] |= _DOT_BITS[y % 4][x % 2]
            if colour is not None:
                self._colour[row][col] = colour

    def line(self, x0: int, y0: int, x1: int, y1: int, colour: str | None = None) -> None:
        """Bresenham line between two dots, both ends included."""
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
        err = dx + dy
        while True:
            self.set(x0, y0, colour)
            if x0 == x1 and y0 == y1:
                return
            e2 = 2 * err
            if e2 >= dy:
                err += dy
                x0 += sx
            if e2 <= dx:
                err += dx
                y0 += sy

    def text(self, default_style: str = "") -> Text:
        out = Text(no_wrap=True, overflow="crop")
        for r in range(self.height):
            for c in range(self.width):
                bits = self._bits[r][c]
                colour = self._colour[r][c]
                style = Style.parse(colour) if colour else Style.parse(default_style) if default_style else None
                out.append(chr(0x2800 + bits) if bits else " ", style)
            if r < self.height - 1:
                out.append("\n")
        return out


# The screen-plane box (x0, x1, y0, y1 metres) each view always shows: an open hand fills it and a closing fist
# visibly shrinks inside it, instead of being re-zoomed to full size every frame.
VIEW_BOX: dict[str, tuple[float, float, float, float]] = {
    BACK: (-0.065, 0.065, -0.01, 0.17),
    SIDE: (-0.01, 0.20, -0.11, 0.03),
}


def draw_hand(joints: Sequence[Sequence[float]], width: int, height: int, *, view: str = BACK) -> Text:
    """The hand in `view` drawn into a `width` × `height` cell braille canvas.

    A braille dot is about as tall as it is wide on screen (a cell is about twice as tall as wide and
    holds 2 × 4 dots), so one scale serves both axes and the hand keeps its proportions.
    """
    canvas = BrailleCanvas(width, height)
    if len(joints) != len(PARENTS):
        return canvas.text()
    pts = project(joints, view).points
    dots_w, dots_h = canvas.dots
    x0, x1, y0, y1 = VIEW_BOX[view]
    scale = min(dots_w / (x1 - x0), dots_h / (y1 - y0))
    pad_x = (dots_w - (x1 - x0) * scale) / 2
    pad_y = (dots_h - (y1 - y0) * scale) / 2

    def to_dots(p: tuple[float, float]) -> tuple[int, int]:
        return round(pad_x + (p[0] - x0) * scale), round(dots_h - 1 - (pad_y + (p[1] - y0) * scale))

    for child, parent in enumerate(PARENTS):
        if parent < 0:
            continue
        a, b = pts[parent], pts[child]
        if not all(math.isfinite(v) for v in (*a, *b)):
            continue
        ax, ay = to_dots(a)
        bx, by = to_dots(b)
        canvas.line(ax, ay, bx, by, FINGER_COLOURS[FINGER_OF[child]])
    return canvas.text()
