"""The hand configuration (TOML): which model output drives which hand channel, limits, slew, safe pose.

The same table becomes the firmware's CONFIGURE (limits in mrad, slew in mrad/s, safe pose, watchdog),
sent at connect and re-sent by the link after every reconnect, so host and device enforce one set of
limits. `runtime/configs/hand6.toml` describes the 6-DOF hand the emulated firmware models.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from firmware_bridge.errors import UserError
from firmware_bridge.protocol import MAX_JOINTS, WATCHDOG_MAX_MS, WATCHDOG_MIN_MS, JointLimit

DEFAULT_HAND_CONFIG = Path(__file__).with_name("configs") / "hand6.toml"
WATCHDOG_RANGE_MS = (WATCHDOG_MIN_MS, WATCHDOG_MAX_MS)  # what the firmware's CONFIGURE accepts


class HandConfigError(UserError):
    """The hand configuration file cannot be used; the message names the file, the key and the problem."""


@dataclass(frozen=True)
class JointMap:
    name: str
    input_index: tuple[int, ...]  # indices into the model's 20 angles
    weights: tuple[float, ...]
    scale: float
    offset_rad: float
    invert: bool
    min_rad: float
    max_rad: float
    max_slew_rad_s: float
    safe_rad: float


JOINT_SUMMARY_FIELDS = ("min_rad", "max_rad", "safe_rad", "max_slew_rad_s")  # per joint, in the hello


@dataclass(frozen=True)
class HandConfig:
    path: Path
    name: str
    watchdog_ms: int
    max_command_rate_hz: float
    threshold: float
    hysteresis: float
    open_dwell_s: float
    safe_after_hold_s: float
    joints: tuple[JointMap, ...]
    text: str  # the file as read, stored in run files

    def summary(self) -> dict[str, Any]:
        """The telemetry hello's `hand` (docs/TELEMETRY.md); a replay rebuilds it from the recorded text with
        the same `JOINT_SUMMARY_FIELDS`."""
        joints = [{"name": j.name, **{key: getattr(j, key) for key in JOINT_SUMMARY_FIELDS}} for j in self.joints]
        return {"name": self.name, "watchdog_ms": self.watchdog_ms, "joints": joints}

    @property
    def safe_pose(self) -> np.ndarray:
        return np.array([j.safe_rad for j in self.joints])

    def map_angles(self, angles: np.ndarray) -> np.ndarray:
        """Model angles (20,) rad → hand targets (n_joints,) rad, clamped to each joint's range."""
        out = np.empty(len(self.joints))
        for k, joint in enumerate(self.joints):
            value = float(np.dot(angles[list(joint.input_index)], joint.weights))
            value = joint.offset_rad + joint.scale * (-value if joint.invert else value)
            out[k] = min(max(value, joint.min_rad), joint.max_rad)
        return out

    def slew_limit(self, previous: np.ndarray, target: np.ndarray, dt_s: float) -> np.ndarray:
        """Host-side rate limit: no joint moves faster than its max_slew_rad_s between two commands."""
        step = np.array([j.max_slew_rad_s for j in self.joints]) * max(dt_s, 0.0)
        return previous + np.clip(target - previous, -step, step)

    def firmware_limits(self) -> list[JointLimit]:
        return [
            JointLimit(
                round(j.min_rad * 1000),
                round(j.max_rad * 1000),
                round(j.max_slew_rad_s * 1000),
                round(j.safe_rad * 1000),
            )
            for j in self.joints
        ]


def _number(where: str, table: dict[str, Any], key: str, default: float | None = None) -> float:
    value = table.get(key, default)
    if value is None:
        raise HandConfigError(f"{where}: '{key}' is missing")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise HandConfigError(f"{where}: '{key}' must be a finite number, got {value!r}")
    return float(value)


def load_hand_config(path: str | Path | None, angle_names: list[str] | tuple[str, ...]) -> HandConfig:
    """Read and check a hand TOML against the model's angle names (from its metadata)."""
    path = Path(path) if path is not None else DEFAULT_HAND_CONFIG
    try:
        text = path.read_text(encoding="utf-8")
        doc = tomllib.loads(text)
    except FileNotFoundError as error:
        raise HandConfigError(f"hand config {path}: no such file") from error
    except IsADirectoryError as error:
        raise HandConfigError(f"hand config {path}: is a folder, not a TOML file") from error
    except (OSError, UnicodeDecodeError) as error:
        raise HandConfigError(f"hand config {path}: cannot read it ({error})") from error
    except tomllib.TOMLDecodeError as error:
        raise HandConfigError(f"hand config {path}: not valid TOML ({error})") from error
    hand, gate, joints = doc.get("hand", {}), doc.get("gate", {}), doc.get("joint", [])
    if not isinstance(hand, dict) or not isinstance(gate, dict) or not isinstance(joints, list):
        raise HandConfigError(f"hand config {path}: expects tables [hand], [gate] and an array [[joint]]")
    if not 1 <= len(joints) <= MAX_JOINTS:
        raise HandConfigError(f"hand config {path}: needs 1–{MAX_JOINTS} [[joint]] tables, found {len(joints)}")
    watchdog = _number(f"{path} [hand]", hand, "watchdog_ms", 150)
    if not (WATCHDOG_RANGE_MS[0] <= watchdog <= WATCHDOG_RANGE_MS[1]) or watchdog != int(watchdog):
        raise HandConfigError(
            f"{path} [hand]: watchdog_ms must be a whole number in {WATCHDOG_RANGE_MS[0]}–{WATCHDOG_RANGE_MS[1]} "
            f"(the firmware refuses anything else), got {watchdog}"
        )
    rate = _number(f"{path} [hand]", hand, "max_command_rate_hz", 50)
    if not 1 <= rate <= 500:
        raise HandConfigError(f"{path} [hand]: max_command_rate_hz must be in 1–500, got {rate}")
    threshold = _number(f"{path} [gate]", gate, "threshold", 0.5)
    hysteresis = _number(f"{path} [gate]", gate, "hysteresis", 0.05)
    if not (0 <= threshold <= 1 and 0 <= hysteresis < 1):
        raise HandConfigError(f"{path} [gate]: threshold must be in [0,1] and hysteresis in [0,1)")
    dwell = _number(f"{path} [gate]", gate, "open_dwell_ms", 100)
    hold = _number(f"{path} [gate]", gate, "safe_after_hold_ms", 500)
    if dwell < 0 or hold < 0:
        raise HandConfigError(f"{path} [gate]: open_dwell_ms and safe_after_hold_ms must be ≥ 0")
    names = {name: i for i, name in enumerate(angle_names)}
    maps = []
    for k, joint in enumerate(joints):
        where = f"{path} [[joint]] #{k + 1}"
        if not isinstance(joint, dict):
            raise HandConfigError(f"{where}: must be a table")
        name = str(joint.get("name", f"joint{k + 1}"))
        where = f"{path} [[joint]] '{name}'"
        inputs = joint.get("inputs")
        if not isinstance(inputs, list) or not inputs or not all(isinstance(i, str) for i in inputs):
            raise HandConfigError(f"{where}: 'inputs' must be a non-empty list of model angle names")
        unknown = [i for i in inputs if i not in names]
        if unknown:
            raise HandConfigError(
                f"{where}: inputs {unknown} are not outputs of this model (its angles: {', '.join(angle_names)})"
            )
        weights = joint.get("weights", [1.0 / len(inputs)] * len(inputs))
        if not isinstance(weights, list) or len(weights) != len(inputs):
            raise HandConfigError(f"{where}: 'weights' must list one number per input")
        weights = [_number(where, {"weights": w}, "weights") for w in weights]
        low, high = _number(where, joint, "min_rad"), _number(where, joint, "max_rad")
        safe, slew = _number(where, joint, "safe_rad"), _number(where, joint, "max_slew_rad_s")
        if not (-32.0 < low <= safe <= high < 32.0):
            raise HandConfigError(f"{where}: needs min_rad ≤ safe_rad ≤ max_rad within ±32 rad")
        if not 0 < slew <= 65.0:
            raise HandConfigError(f"{where}: max_slew_rad_s must be in (0, 65]")
        invert = joint.get("invert", False)
        if not isinstance(invert, bool):
            raise HandConfigError(f"{where}: 'invert' must be true or false")
        maps.append(
            JointMap(
                name,
                tuple(names[i] for i in inputs),
                tuple(weights),
                _number(where, joint, "scale", 1.0),
                _number(where, joint, "offset_rad", 0.0),
                invert,
                low,
                high,
                slew,
                safe,
            )
        )
    return HandConfig(
        path,
        str(hand.get("name", path.stem)),
        int(watchdog),
        rate,
        threshold,
        hysteresis,
        dwell / 1000.0,
        hold / 1000.0,
        tuple(maps),
        text,
    )
