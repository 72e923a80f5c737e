"""Which of the sessions given to a held-out step (evaluation, calibration) did the model train on."""

from __future__ import annotations

import sys
from pathlib import Path

from training.data.windows import emg_fingerprint
from training.models.checkpoint_meta import CheckpointMeta


def training_overlap(sessions: list, meta: CheckpointMeta, checkpoint: Path) -> list[str]:
    """Sessions the model trained on: the same EMG content (any name), or, for checkpoints written before
    content fingerprints existed, the same `subject/session` key (with a note that renamed copies pass)."""
    fingerprints = meta.training.train_emg_sha256 if meta.training else None
    trained_keys = set(meta.training.train_sessions if meta.training else ())
    if not fingerprints:
        print(
            f"note: {checkpoint} predates content fingerprints: training sessions are recognised by their "
            "subject/session key only (a renamed copy would pass); retrain to get the stronger check",
            file=sys.stderr,
        )
        return sorted(f"{s.path} ({s.key})" for s in sessions if s.key in trained_keys)
    by_content = {digest: key for key, digest in fingerprints.items()}
    overlap = []
    for s in sessions:
        digest = emg_fingerprint(s)
        if digest in by_content:
            same = "" if by_content[digest] == s.key else f", the EMG of training session {by_content[digest]}"
            overlap.append(f"{s.path} ({s.key}{same})")
        elif s.key in trained_keys:
            print(
                f"note: {s.path} has the key {s.key} of a training session but different EMG; evaluated",
                file=sys.stderr,
            )
    return sorted(overlap)
