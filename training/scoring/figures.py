"""Saving matplotlib figures the way every user file is written: atomically, and always closed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from firmware_bridge.atomic_write import atomic_path


def save_figure(fig: Any, path: Path, dpi: int = 90) -> Path:
    """Lay out `fig`, write it to `path` (previous file or complete new one, never half), close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi)
    finally:
        plt.close(fig)
    return path
