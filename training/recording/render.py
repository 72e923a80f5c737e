"""Draw a hand from known joints, the way a webcam would see it, so the real MediaPipe landmarker can be tested.

The 21 joints of our open hand model (MANO order, metres, wrist-relative, hand frame of
`training/hand/open_hand.py`: +x to the fingers, palm normal −y, thumb on −z) are placed in front of a
pinhole camera (`HandView`) and drawn as a skin-coloured palm (finger webs, thenar pad, three palm
creases) with a forearm stub and tapering finger capsules, each part shaded like a rounded surface (dark
at its outline, so fingers over the palm stay visible), farthest part first (painter's order by depth).
Flat, unshaded shapes were not enough: the landmarker's palm detector found almost none of them; with
the shading it tracks the clips (`benchmarks/landmarks_vs_pose.py` measures how often and how well).
The result gives test clips whose true pose is known exactly (`render_clip`, `gesture_clip`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from firmware_bridge.errors import UserError
from training.hand.angle_map import emg2pose_angles_to_mano_pose
from training.hand.fk_numpy import forward_kinematics_np
from training.hand.open_hand import open_hand_model
from training.synth.motion import GESTURES, HI, LO

# Finger chains in MANO order (base joint → tip) and each finger's radius at its base (metres).
_CHAINS: dict[str, tuple[int, ...]] = {
    "thumb": (13, 14, 15, 16),
    "index": (1, 2, 3, 17),
    "middle": (4, 5, 6, 18),
    "ring": (10, 11, 12, 19),
    "pinky": (7, 8, 9, 20),
}
_RADIUS_M = {"thumb": 0.0115, "index": 0.0095, "middle": 0.0098, "ring": 0.0092, "pinky": 0.0080}
_TAPER = 0.78  # tip radius / base radius
_AMBIENT = 0.5  # brightness of a surface seen edge-on, relative to one facing the camera
_WEB = 0.3  # how far up the proximal phalanx the palm's skin reaches
_WRIST_HALF_WIDTH_M = 0.027
_FOREARM_LENGTH_M = 0.16
# The palm's main creases (heart, head and life lines) as (u, v) polylines: u from the wrist (0) to the
# knuckle row (1), v across the palm from the thumb side (−1) to the little-finger side (+1).
_PALM_CREASES_UV = (
    np.array([[0.80, 1.05], [0.76, 0.5], [0.79, 0.0], [0.86, -0.42]]),
    np.array([[0.74, -1.0], [0.66, -0.45], [0.58, 0.25], [0.52, 0.75]]),
    np.array([[0.74, -1.0], [0.56, -0.66], [0.36, -0.56], [0.16, -0.38], [0.04, -0.22]]),
)
_SUPERSAMPLE = 2  # draw at 2× and shrink: smooth, camera-like edges

# The hand frame seen by the camera (OpenCV camera axes: x right, y down, z forward) with the palm facing
# the camera and the fingers up: hand +x → image up (−y), palm normal −y → towards the camera (−z).
_BASE_ROTATION = np.array([[0.0, 0.0, -1.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def _axis_rotation(axis: int, degrees: float) -> np.ndarray:
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    i, j = [k for k in range(3) if k != axis]
    r = np.eye(3)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


@dataclass(frozen=True)
class HandView:
    """Where the hand is in front of the camera and how the picture looks.

    Angles turn the default pose (palm facing the camera, fingers up) about the camera's axes:
    `roll_deg` in the image plane, `pitch_deg` tips the fingers away from (+) or towards (−) the camera,
    `yaw_deg` turns the palm sideways. `focal_px` is for a 640-pixel-wide image (≈ 56° field of view, a
    typical webcam) and scales with the width. `center` is where the palm centre lands, as a fraction of
    the image size. The default (turned 20° about the vertical, 0.5 m away) is the view in which the real
    landmarker tracked the synthetic gestures best (94–96 % of frames, benchmarks/landmarks_vs_pose.py);
    a straight palm-on view loses the synthetic pinch and tripod, whose thumb crosses the palm.
    """

    roll_deg: float = 0.0
    pitch_deg: float = 0.0
    yaw_deg: float = 20.0
    distance_m: float = 0.5
    focal_px: float = 600.0
    center: tuple[float, float] = (0.5, 0.52)
    skin_rgb: tuple[int, int, int] = (226, 178, 148)
    background_rgb: tuple[int, int, int] = (62, 78, 96)
    texture: float = 6.0  # std of the background's low-frequency brightness texture (grey levels)
    noise: float = 2.0  # std of per-pixel sensor noise (grey levels)

    def rotation(self) -> np.ndarray:
        """Hand frame → camera frame."""
        turn = _axis_rotation(2, self.roll_deg) @ _axis_rotation(1, self.yaw_deg) @ _axis_rotation(0, self.pitch_deg)
        return turn @ _BASE_ROTATION


def _palm_frame(joints: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit vectors along the palm (to the fingers), across it (to the little finger) and its normal."""
    along = joints[4] - joints[0]
    along = along / np.linalg.norm(along)
    across = joints[7] - joints[1]
    across = across - along * (across @ along)
    across = across / np.linalg.norm(across)
    return along, across, np.cross(along, across)


def _camera_points(joints: np.ndarray, view: HandView) -> np.ndarray:
    """Joints (N,3) in the hand frame → camera frame, palm centre on the optical axis at `distance_m`."""
    palm_centre = joints[[0, 1, 4, 7, 10]].mean(axis=0)
    return (joints - palm_centre) @ view.rotation().T + np.array([0.0, 0.0, view.distance_m])


@functools.lru_cache(maxsize=8)
def _background(shape: tuple[int, int], rgb: tuple[int, int, int], texture: float) -> np.ndarray:
    """A still backdrop (made once per look and size): flat colour, a soft light gradient, blotchy texture."""
    h, w = shape
    image = np.empty((h, w, 3), dtype=np.float32)
    image[:] = rgb
    rows = np.linspace(-0.5, 0.5, h, dtype=np.float32)[:, None, None]
    image += 18.0 * rows
    if texture > 0:
        coarse = np.random.default_rng(12345).normal(0.0, texture, (max(2, h // 40), max(2, w // 40)))
        image += cv2.resize(coarse.astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)[..., None]
    image.flags.writeable = False
    return image


def _shade(rgb: tuple[int, int, int], factor: float) -> tuple[int, int, int]:
    return tuple(int(np.clip(c * factor, 0, 255)) for c in rgb)  # type: ignore[return-value]


def _fixed(p: np.ndarray) -> np.ndarray:
    """Pixel coordinates → OpenCV fixed-point (2 fractional bits) integers."""
    return np.round(np.asarray(p) * 4).astype(np.int32)


def _capsule_mask(mask: np.ndarray, a: np.ndarray, b: np.ndarray, ra: float, rb: float) -> None:
    """Fill a tapering capsule from a (radius ra) to b (radius rb) into a uint8 mask, pixel units."""
    cv2.circle(mask, tuple(_fixed(a)), round(ra * 4), 255, -1, cv2.LINE_AA, 2)
    cv2.circle(mask, tuple(_fixed(b)), round(rb * 4), 255, -1, cv2.LINE_AA, 2)
    d = b - a
    length = float(np.linalg.norm(d))
    if length < 1e-6:
        return
    n = np.array([-d[1], d[0]]) / length
    cv2.fillConvexPoly(mask, _fixed([a + n * ra, b + n * rb, b - n * rb, a - n * ra]), 255, cv2.LINE_AA, 2)


@dataclass(frozen=True)
class _Region:
    """A part's own mask, covering only its bounding box: drawing code subtracts `offset` from coordinates."""

    mask: np.ndarray  # uint8 (h, w)
    offset: np.ndarray  # (x0, y0) of the box in canvas pixels


@dataclass
class _Part:
    """One drawable piece of the hand: its depth (for painter's order), outline, colour and roundness."""

    depth: float
    draw_mask: Callable[[_Region], None]  # fills the part's outline into the region's mask
    bbox: tuple[int, int, int, int]  # x0, y0, x1, y1 in canvas pixels
    tone: tuple[int, int, int]
    round_px: float  # how far in from the outline the surface curves (cylinder radius)
    creases: tuple[np.ndarray, ...] = ()  # polylines (N,2) in canvas pixels drawn as skin folds


def _composite(canvas: np.ndarray, part: _Part) -> None:
    """Paint one part with a rounded (cylinder-like) shading: dark at the outline, bright on the ridge."""
    h, w = canvas.shape[:2]
    pad = 4
    x0, y0 = max(0, part.bbox[0] - pad), max(0, part.bbox[1] - pad)
    x1, y1 = min(w, part.bbox[2] + pad), min(h, part.bbox[3] + pad)
    if x1 <= x0 or y1 <= y0:
        return
    mask = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
    part.draw_mask(_Region(mask, np.array([x0, y0], dtype=np.float64)))
    inside = (mask > 127).astype(np.uint8)
    depth_in = cv2.distanceTransform(inside, cv2.DIST_L2, 3)
    u = np.clip(depth_in / max(part.round_px, 1.0), 0.0, 1.0)
    nz = np.sqrt(1.0 - (1.0 - u) ** 2)  # the surface normal's component towards the camera
    shade = (_AMBIENT + (1.0 - _AMBIENT) * nz)[..., None] * np.asarray(part.tone, dtype=np.float32)
    alpha = (mask.astype(np.float32) / 255.0)[..., None]
    roi = canvas[y0:y1, x0:x1]
    roi[:] = roi * (1.0 - alpha) + shade * alpha
    fold = tuple(float(c) * 0.72 for c in part.tone)
    for line in part.creases:
        cv2.polylines(canvas, [_fixed(line)], False, fold, max(1, round(part.round_px / 9)), cv2.LINE_AA, 2)


def _capsule_part(
    depth: float, a: np.ndarray, b: np.ndarray, ra: float, rb: float, tone: tuple, round_px: float
) -> _Part:
    r = max(ra, rb)
    lo = np.floor(np.minimum(a, b) - r).astype(int)
    hi = np.ceil(np.maximum(a, b) + r).astype(int)

    def draw(target: _Region) -> None:
        _capsule_mask(target.mask, a - target.offset, b - target.offset, ra, rb)

    return _Part(depth, draw, (lo[0], lo[1], hi[0], hi[1]), tone, round_px)


def render_hand(
    joints_mano: np.ndarray,
    *,
    size: tuple[int, int] = (480, 640),
    view: HandView | None = None,
    mirror: bool = False,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """(21,3) MANO-order joints (metres, wrist-relative, hand frame) → (H,W,3) uint8 RGB camera image.

    `size` is (height, width). The image is what an unmirrored webcam sees (a right hand's thumb on the
    image's right when the palm faces the camera); `mirror=True` flips it left-right like a selfie view.
    """
    joints = np.asarray(joints_mano, dtype=np.float64)
    if joints.shape != (21, 3):
        raise ValueError(f"joints_mano must be (21,3), got {joints.shape}")
    view = view or HandView()
    rng = rng if rng is not None else np.random.default_rng(0)
    h, w = size
    ss = _SUPERSAMPLE
    focal = view.focal_px * w / 640.0

    along, across, normal = _palm_frame(joints)
    palm_length = float(np.linalg.norm(joints[4] - joints[0]))
    palm_half_width = 0.62 * float(np.linalg.norm(joints[7] - joints[1]))
    creases = [
        joints[0] + palm_length * uv[:, :1] * along + palm_half_width * uv[:, 1:] * across + 0.009 * normal
        for uv in _PALM_CREASES_UV
    ]
    extra = np.stack(
        [
            joints[0] - _WRIST_HALF_WIDTH_M * 0.9 * across,  # wrist, thumb side
            joints[0] + _WRIST_HALF_WIDTH_M * across,  # wrist, little-finger side
            joints[0] - _FOREARM_LENGTH_M * along,  # elbow-ward end of the forearm stub
            joints[7] + 0.6 * (joints[7] - joints[10]) - 0.02 * along,  # hypothenar edge below the pinky
            joints[1] - 0.45 * (joints[4] - joints[1]),  # radial edge of the palm at the index knuckle
        ]
    )
    points = _camera_points(np.concatenate([joints, extra, *creases]), view)
    z = points[:, 2]
    if np.any(z <= 0.02):
        raise ValueError("the hand is behind or touching the camera; increase HandView.distance_m")
    px = np.empty((len(points), 2))
    px[:, 0] = (focal * points[:, 0] / z + view.center[0] * w) * ss
    px[:, 1] = (focal * points[:, 1] / z + view.center[1] * h) * ss
    scale = focal * ss / z  # metres → supersampled pixels at each point's depth
    wrist_r, wrist_u, elbow, hypothenar, radial = range(21, 26)
    crease_px = tuple(np.split(px[26:], np.cumsum([len(c) for c in creases])[:-1]))
    skin = view.skin_rgb
    parts: list[_Part] = []

    forearm_r = _WRIST_HALF_WIDTH_M * scale[0]
    parts.append(
        _capsule_part(
            float(z[elbow] + z[0]) / 2 + 0.05,
            px[elbow],
            px[0],
            forearm_r * 1.1,
            forearm_r * 0.95,
            _shade(skin, 0.95),
            forearm_r,
        )
    )

    # the palm's skin reaches a third of the way up the proximal phalanges (the finger webs)
    webs = [
        px[_CHAINS[f][0]] + _WEB * (px[_CHAINS[f][1]] - px[_CHAINS[f][0]]) for f in ("index", "middle", "ring", "pinky")
    ]
    palm_px = np.concatenate([px[[wrist_r, 13, radial, 1, 4, 10, 7, hypothenar, wrist_u]], np.stack(webs)])
    knuckles = [
        (px[_CHAINS[f][0]] + _WEB * (px[_CHAINS[f][1]] - px[_CHAINS[f][0]]), _RADIUS_M[f] * scale[_CHAINS[f][0]])
        for f in ("index", "middle", "ring", "pinky")
    ]
    # the thumb's metacarpal is buried in the thenar eminence, part of the palm; a web joins its end to the index
    thenar_a, thenar_b = px[13], px[14]
    thenar_ra, thenar_rb = 1.5 * _RADIUS_M["thumb"] * scale[13], 1.1 * _RADIUS_M["thumb"] * scale[14]
    first_web = np.stack([px[13], px[14], 0.5 * (px[14] + px[1])])
    everything = np.concatenate([palm_px, px[[14]]])
    lo = np.floor(everything.min(axis=0) - 30 * ss).astype(int)
    hi = np.ceil(everything.max(axis=0) + 30 * ss).astype(int)

    def draw_palm(target: _Region) -> None:
        hull = cv2.convexHull(_fixed(palm_px - target.offset))
        cv2.fillConvexPoly(target.mask, hull, 255, cv2.LINE_AA, 2)
        for centre, radius in knuckles:
            cv2.circle(target.mask, tuple(_fixed(centre - target.offset)), int(radius * 4), 255, -1, cv2.LINE_AA, 2)
        _capsule_mask(target.mask, thenar_a - target.offset, thenar_b - target.offset, thenar_ra, thenar_rb)
        cv2.fillConvexPoly(target.mask, _fixed(first_web - target.offset), 255, cv2.LINE_AA, 2)

    palm_depth = float(np.mean(z[[0, 1, 4, 7, 10]]))
    parts.append(_Part(palm_depth + 0.004, draw_palm, (lo[0], lo[1], hi[0], hi[1]), skin, 0.018 * scale[0], crease_px))

    for finger, chain in _CHAINS.items():
        radius = _RADIUS_M[finger]
        n_seg = len(chain) - 1
        for k in range(1 if finger == "thumb" else 0, n_seg):
            a, b = chain[k], chain[k + 1]
            ra = radius * (1.0 - (1.0 - _TAPER) * k / n_seg) * scale[a]
            rb = radius * (1.0 - (1.0 - _TAPER) * (k + 1) / n_seg) * scale[b]
            depth = float(max(z[a], z[b])) - 1e-4 * k
            parts.append(_capsule_part(depth, px[a], px[b], ra, rb, _shade(skin, 1.0 - 0.03 * k), max(ra, rb)))

    canvas = _background((h * ss, w * ss), tuple(view.background_rgb), float(view.texture)).copy()
    for part in sorted(parts, key=lambda p: -p.depth):
        _composite(canvas, part)
    image = cv2.resize(canvas, (w, h), interpolation=cv2.INTER_AREA)
    if view.noise > 0:
        image += view.noise * rng.standard_normal((h, w, 1), dtype=np.float32)  # grey sensor noise
    image = np.clip(image, 0, 255).astype(np.uint8)
    if mirror:
        image = np.ascontiguousarray(image[:, ::-1])
    return image


@dataclass(frozen=True)
class GestureClip:
    """Known poses of a clip: θ (T,45), joints (T,21,3) metres (MANO order) and what each frame shows."""

    theta: np.ndarray
    joints: np.ndarray
    labels: tuple[str, ...]  # the gesture held, or "a→b" while moving from a to b


def gesture_clip(
    seconds: float, fps: float = 30.0, seed: int = 0, *, gestures: tuple[str, ...] | None = None
) -> GestureClip:
    """The open hand moving through the synthetic world's GESTURES: holds of 0.4–0.8 s joined by
    minimum-jerk moves of 0.5–0.8 s, starting from "open"; the order is seeded (`gestures` fixes it, cycling)."""
    rng = np.random.default_rng(seed)
    n = max(1, round(seconds * fps))
    names = list(GESTURES)
    keys: list[tuple[float, str]] = [(0.0, "open")]
    t, current, k = 0.0, "open", 0
    while t < seconds:
        t += rng.uniform(0.4, 0.8)
        keys.append((t, current))
        if gestures:
            current, k = gestures[k % len(gestures)], k + 1
        else:
            current = str(rng.choice([g for g in names if g != current]))
        t += rng.uniform(0.5, 0.8)
        keys.append((t, current))
    times = np.arange(n) / fps
    key_t = np.array([key[0] for key in keys])
    key_a = np.stack([np.clip(GESTURES[key[1]], LO, HI) for key in keys])
    seg = np.clip(np.searchsorted(key_t, times, side="right") - 1, 0, len(keys) - 2)
    span = np.maximum(key_t[seg + 1] - key_t[seg], 1e-9)
    s = np.clip((times - key_t[seg]) / span, 0.0, 1.0)[:, None]
    s = 10 * s**3 - 15 * s**4 + 6 * s**5
    angles = key_a[seg] + (key_a[seg + 1] - key_a[seg]) * s
    theta = emg2pose_angles_to_mano_pose(angles)
    joints = forward_kinematics_np(open_hand_model(), theta)
    labels = tuple(
        keys[i][1] if keys[i][1] == keys[i + 1][1] else f"{keys[i][1]}→{keys[i + 1][1]}" for i in seg.tolist()
    )
    return GestureClip(theta=theta, joints=joints, labels=labels)


def gesture_clip_poses(seconds: float, fps: float = 30.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Known poses for a clip: (T,45) θ and (T,21,3) joints moving through the synthetic GESTURES (`gesture_clip`)."""
    clip = gesture_clip(seconds, fps, seed)
    return clip.theta, clip.joints


def render_clip(
    joints_seq: np.ndarray,
    path: str | Path,
    fps: float = 30.0,
    *,
    size: tuple[int, int] = (480, 640),
    mirror: bool = False,
    seed: int = 0,
    **view: object,
) -> Path:
    """Write a (T,21,3) joint sequence as an mp4 clip ('mp4v'); `view` keywords are `HandView` fields."""
    path = Path(path)
    joints_seq = np.asarray(joints_seq, dtype=np.float64)
    hand_view = HandView(**view)  # type: ignore[arg-type]
    rng = np.random.default_rng(seed)
    h, w = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (w, h))
    if not writer.isOpened():
        raise UserError(
            f"{path}: cannot write a video there (OpenCV's mp4v writer did not open; does the folder exist?)"
        )
    try:
        for joints in joints_seq:
            image = render_hand(joints, size=size, view=hand_view, mirror=mirror, rng=rng)
            writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return path
