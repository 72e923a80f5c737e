"""Model confidence over the recent hops, with the gate threshold as a line (textual-plotext)."""

from __future__ import annotations

from textual.reactive import reactive
from textual_plotext import PlotextPlot

HOP_S = 0.05  # the x axis is in seconds before now, at the runtime's 20 Hz hop (hello `hop_ms` overrides)


class ConfidencePlot(PlotextPlot):
    """Confidence (0–1) of the last hops against seconds before the newest; the threshold dashed across."""

    series: reactive[tuple[float | None, ...]] = reactive(())
    """Confidence of the recent hops, oldest first (None before the first inference)."""
    threshold: reactive[float | None] = reactive(None)
    """The current gate threshold."""
    hop_s: reactive[float] = reactive(HOP_S)
    """Seconds between hops."""

    def on_mount(self) -> None:
        super().on_mount()
        self._replot()

    def _replot(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.ylim(0, 1)
        plt.yticks([0, 0.5, 1])
        n = len(self.series)
        span = max(n, 2) * self.hop_s
        plt.xlim(-span, 0)
        points = [((i - n + 1) * self.hop_s, v) for i, v in enumerate(self.series) if v is not None]
        if self.threshold is not None:
            plt.hline(self.threshold, "red")
        if points:
            xs, ys = zip(*points, strict=True)
            plt.plot(xs, ys, marker="braille", color="cyan")
        self.refresh()

    def watch_series(self) -> None:
        if self.is_mounted:
            self._replot()

    watch_threshold = watch_series
    watch_hop_s = watch_series
