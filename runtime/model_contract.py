"""The model contract: what an exported Mode 2 model takes, gives and says about itself — in one place.

The exporter (`export/`) writes models against these names, shapes and this metadata schema; the runtime
(`runtime/model_metadata.load_model`) checks every model it loads against them. Plain Python only: no
torch, no numpy, no onnxruntime (the device imports this, and so does the exporter).

- Inputs: `emg` (batch, 8, 1000) MindRove µV, 2 s at 500 Hz, channels in SDK EMG-row order, after the
  causal input filter the metadata describes (`input.input_filter`, applied by the runtime to the stream;
  metadata version 1 models took raw µV and detrended inside the graph); `initial_pose` (batch, 20) rad,
  the tracking initial state.
- Streaming (metadata `streaming`, Mode 2 models from metadata version 2): three sibling graphs —
  `encoder_step` (40 ms of filtered samples + carry → one feature frame), `lstm_step` (one rollout step for
  a batch of rollouts), `head` (angles + last frame + channel levels → θ, joints, confidence) — that the
  `exact` and `continuous` engines run (runtime/inference.py).
- Outputs (looked up by name, never by position): `theta` (batch, 45) rad, `joints` (batch, 21, 3) m,
  `angles` (batch, 20) rad, `confidence` (batch,), `feedback_angles` (batch, 20) rad.
- Metadata: one JSON object under `metadata_props[METADATA_KEY]`, read into the typed, frozen
  `ModelMetadata` by `ModelMetadata.parse`, which refuses any field of the wrong type, shape or range
  and names the field.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from firmware_bridge.errors import UserError

METADATA_KEY = "mode2"
METADATA_VERSION = 2  # 2: the input filter runs on the stream, before the window; streaming graphs

CHANNELS = 8
SAMPLING_RATE_HZ = 500.0
WINDOW_SAMPLES = 1000
RECOMMENDED_HOP_SAMPLES = WINDOW_SAMPLES // 2
UNITS = "uV"
N_ANGLES = 20
N_JOINTS = 21
THETA_SIZE = 45
BATCH = "batch"  # the one dynamic dimension of every input and output

MODEL_KINDS = ("mode2", "direct")
ENGINE_NAMES = ("windowed", "exact", "continuous")
STREAM_PARTS = ("encoder_step", "lstm_step", "head")
SUPPORTED_POLICIES = ("neutral", "train_mean", "feedback", "none")
POLICIES_NEEDING_MEAN = ("train_mean", "feedback")  # feedback falls back to the mean after a reset
NO_QUANTIZATION = "none"
INT8_DYNAMIC = "int8-dynamic"  # onnxruntime dynamic quantization: int8 weights, activations quantized on the fly
QUANTIZATIONS = (NO_QUANTIZATION, INT8_DYNAMIC)


# optional figures of `validation` beside val_mpjpe_mm, with their lowest valid value
OPTIONAL_VALIDATION: dict[str, float] = {
    "val_fingertip_mm": 0.0,  # mean error of the 5 fingertips
    "val_flexion_error_deg": 0.0,  # mean |Δ flexion| over the 5 fingers
    "val_mean_pose_mpjpe_mm": 0.0,  # the training-label mean pose's MPJPE on the same frames
    "val_skill": -math.inf,  # 1 − val_mpjpe_mm / val_mean_pose_mpjpe_mm; ≤ 0: no better than the mean pose
}


class ModelMetadataError(UserError, ValueError):
    """An exported model (file, graph or metadata) is missing, broken or asks for what this runtime cannot do."""


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output: its name, its shape (`BATCH` for the dynamic dimension), float32."""

    name: str
    shape: tuple[str | int, ...]
    onnx_type: str = "tensor(float)"

    @property
    def rank(self) -> int:
        return len(self.shape)

    def as_json(self) -> list[str | int]:
        return list(self.shape)


EMG = TensorSpec("emg", (BATCH, CHANNELS, WINDOW_SAMPLES))
INITIAL_POSE = TensorSpec("initial_pose", (BATCH, N_ANGLES))
THETA = TensorSpec("theta", (BATCH, THETA_SIZE))
JOINTS = TensorSpec("joints", (BATCH, N_JOINTS, 3))
ANGLES = TensorSpec("angles", (BATCH, N_ANGLES))
CONFIDENCE = TensorSpec("confidence", (BATCH,))
FEEDBACK_ANGLES = TensorSpec("feedback_angles", (BATCH, N_ANGLES))

INPUTS: tuple[TensorSpec, ...] = (EMG, INITIAL_POSE)

# the streaming graphs (names only: their widths depend on the backbone, the runtime reads them off the graph)
CHUNK = "chunk"  # (batch, 8, frame_samples) filtered µV
CARRY_PREFIX = "carry_"  # encoder_step's carried state: input `carry_X`, output `carry_X_next`
FRAME = "frame"  # (batch, features)
FEATURE, POSE, HIDDEN, CELL = "feature", "pose", "h", "c"  # lstm_step inputs; outputs with the suffix below
NEXT = "_next"
HEAD_INPUTS = ("angles", "last_feature", "level")
HEAD_OUTPUTS = ("theta", "joints", "confidence")
OUTPUTS: tuple[TensorSpec, ...] = (THETA, JOINTS, ANGLES, CONFIDENCE, FEEDBACK_ANGLES)
INPUT_NAMES = tuple(spec.name for spec in INPUTS)
OUTPUT_NAMES = tuple(spec.name for spec in OUTPUTS)


@dataclass(frozen=True)
class ParityFigures:
    """How closely this file reproduced the PyTorch model at export (its own figures, fp32 or int8)."""

    windows: int
    theta_max_abs_rad: float
    joints_max_abs_mm: float
    confidence_max_abs: float
    mpjpe_torch_mm: float | None
    mpjpe_onnx_mm: float | None
    mpjpe_delta_mm: float | None


@dataclass(frozen=True)
class StreamingInfo:
    """What the `exact` and `continuous` engines need to know (metadata `streaming`)."""

    files: Mapping[str, Mapping[str, str]]  # part → {"file": sibling file name, "sha256": …}
    frame_samples: int  # window samples per feature frame (20 = 40 ms)
    frame_end_before_window_end: int  # the window's last frame ends this many samples before its last sample
    frames_per_window: int
    steps_per_window: int
    engines: tuple[str, ...]  # the engines this model supports, "windowed" always first
    default_engine: str
    accuracy: Mapping[str, Any]  # measured figures per engine (may be empty)
    parity: Mapping[str, Any] | None  # exact engine vs the windowed model at export


@dataclass(frozen=True)
class ModelMetadata:
    """The `mode2` metadata of one exported model, checked field by field (see `parse`)."""

    raw: Mapping[str, Any] = field(repr=False, compare=False, hash=False)
    metadata_version: int
    model_kind: str
    channels: int
    channel_order: tuple[str, ...]
    sampling_rate_hz: float
    window_samples: int
    recommended_hop_samples: int
    units: str
    normalisation_std_uv: tuple[float, ...] | None
    input_filter: Mapping[str, Any] | None  # None: a version 1 model that takes raw µV
    streaming: StreamingInfo | None
    angle_names: tuple[str, ...]
    initial_state_policy: str
    initial_state_mean: tuple[float, ...] | None
    joint_names: tuple[str, ...]
    confidence_calibrated: bool
    validation_mpjpe_mm: float | None
    quantization: str
    opset: int
    source_checkpoint_sha256: str
    software_version: str
    parity: ParityFigures | None
    # optional in `validation` (models exported before they existed have none): the skill score's reference
    # and the figures beside MPJPE (training/scoring/metrics.py defines them)
    validation_extra: Mapping[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """What a telemetry hello says about the model (docs/TELEMETRY.md); the live runtime and a replayed
        run file both build it here."""
        return {
            "kind": self.model_kind,
            "rate_hz": self.sampling_rate_hz,
            "window": self.window_samples,
            "channels": self.channels,
            "channel_order": list(self.channel_order),
            "units": self.units,
            "quantization": self.quantization,
            "validation_mpjpe_mm": self.validation_mpjpe_mm,
            "confidence_calibrated": self.confidence_calibrated,
        }

    @property
    def window_seconds(self) -> float:
        return self.window_samples / self.sampling_rate_hz

    @classmethod
    def parse(cls, doc: Any, where: str, *, require_parity: bool = True) -> ModelMetadata:
        """Check a decoded metadata document and return it typed, or raise ModelMetadataError naming
        `where` and every field that is wrong. `require_parity=False` only for the exporter, which
        checks the document before its parity figures exist."""
        return _Parser(where).parse(doc, require_parity)


_SHA256 = re.compile(r"[0-9a-f]{64}")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(type(value), repr(value))


class _Parser:
    """Collects every problem (field path + what is wrong) and raises them together."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.problems: list[str] = []

    def fail(self, path: str, problem: str) -> None:
        self.problems.append(f"{path}: {problem}")

    # --- typed getters: return the value when it is right, else record the problem and return None ---

    def obj(self, parent: Mapping[str, Any] | None, key: str, path: str, *, optional: bool = False) -> dict | None:
        if parent is None:
            return None
        value = parent.get(key)
        if value is None and optional:
            return None
        if not isinstance(value, dict):
            self.fail(path, "missing" if key not in parent else f"expected an object, got {_kind(value)}")
            return None
        return value

    def exact(self, parent: Mapping[str, Any] | None, key: str, path: str, expected: Any) -> None:
        if parent is None:
            return
        value = parent.get(key, None)
        same = value == expected and type(value) is type(expected)
        if isinstance(expected, float):
            same = _is_number(value) and float(value) == expected
        if not same:
            got = "missing" if key not in parent else f"is {value!r}"
            self.fail(path, f"{got}, the model contract says {expected!r}")

    def choice(self, parent: Mapping[str, Any], key: str, path: str, options: tuple[str, ...]) -> str | None:
        value = parent.get(key)
        if not isinstance(value, str) or value not in options:
            got = "missing" if key not in parent else f"is {value!r}"
            self.fail(path, f"{got}, expected one of {list(options)}")
            return None
        return value

    def integer(self, parent: Mapping[str, Any], key: str, path: str, low: int, high: int) -> int | None:
        value = parent.get(key)
        if not _is_int(value) or not low <= value <= high:
            got = "missing" if key not in parent else f"is {value!r}"
            self.fail(path, f"{got}, expected an integer in {low}–{high}")
            return None
        return value

    def number(
        self, parent: Mapping[str, Any], key: str, path: str, *, optional: bool = False, low: float = 0.0
    ) -> float | None:
        value = parent.get(key)
        if value is None and optional:
            return None
        if not _is_number(value) or value < low:
            got = "missing" if key not in parent else f"is {value!r}"
            self.fail(path, f"{got}, expected a finite number ≥ {low:g}")
            return None
        return float(value)

    def text(self, parent: Mapping[str, Any], key: str, path: str) -> str | None:
        value = parent.get(key)
        if not isinstance(value, str):
            self.fail(path, "missing" if key not in parent else f"expected a string, got {_kind(value)}")
            return None
        return value

    def names(self, parent: Mapping[str, Any] | None, key: str, path: str, count: int) -> tuple[str, ...] | None:
        if parent is None:
            return None
        value = parent.get(key)
        if (
            not isinstance(value, list)
            or len(value) != count
            or not all(isinstance(v, str) and v.strip() for v in value)
            or len(set(value)) != count
        ):
            got = "missing" if key not in parent else f"is {_describe_list(value)}"
            self.fail(path, f"{got}, expected {count} distinct non-empty names")
            return None
        return tuple(value)

    def numbers(
        self, parent: Mapping[str, Any], key: str, path: str, count: int, *, positive: bool = False
    ) -> tuple[float, ...] | None:
        value = parent.get(key)
        if (
            not isinstance(value, list)
            or len(value) != count
            or not all(_is_number(v) and (v > 0 or not positive) for v in value)
        ):
            got = "missing" if key not in parent else f"is {_describe_list(value)}"
            kind = "positive finite numbers" if positive else "finite numbers"
            self.fail(path, f"{got}, expected {count} {kind}")
            return None
        return tuple(float(v) for v in value)

    # --- the document ---

    def parse(self, doc: Any, require_parity: bool) -> ModelMetadata:
        if not isinstance(doc, dict):
            raise ModelMetadataError(f"{self.where}: '{METADATA_KEY}' metadata must be a JSON object, got {_kind(doc)}")
        version = doc.get("metadata_version")
        if not _is_int(version) or version < 1:
            self.fail("metadata_version", f"is {version!r}, expected an integer ≥ 1")
        elif version > METADATA_VERSION:
            raise ModelMetadataError(
                f"{self.where}: metadata_version {version} is newer than this runtime's ({METADATA_VERSION}); "
                "update mode2-edge"
            )
        kind = self.choice(doc, "model_kind", "model_kind", MODEL_KINDS)

        spec = self.obj(doc, "input", "input")
        self.exact(spec, "name", "input.name", EMG.name)
        self.exact(spec, "shape", "input.shape", EMG.as_json())
        self.exact(spec, "channels", "input.channels", CHANNELS)
        self.exact(spec, "sampling_rate_hz", "input.sampling_rate_hz", SAMPLING_RATE_HZ)
        self.exact(spec, "window_samples", "input.window_samples", WINDOW_SAMPLES)
        self.exact(spec, "window_seconds", "input.window_seconds", WINDOW_SAMPLES / SAMPLING_RATE_HZ)
        self.exact(spec, "units", "input.units", UNITS)
        order = self.names(spec, "channel_order", "input.channel_order", CHANNELS)
        hop = std = input_filter = None
        if spec is not None and _is_int(version) and version >= 2:
            input_filter = self.obj(spec, "input_filter", "input.input_filter")
            if input_filter is not None and input_filter.get("kind") != "sos":
                self.fail("input.input_filter.kind", f"is {input_filter.get('kind')!r}, expected 'sos'")
        if spec is not None:
            hop = self.integer(spec, "recommended_hop_samples", "input.recommended_hop_samples", 1, WINDOW_SAMPLES)
            if spec.get("normalisation_std_uv") is not None:
                std = self.numbers(spec, "normalisation_std_uv", "input.normalisation_std_uv", CHANNELS, positive=True)

        pose = self.obj(doc, "initial_pose_input", "initial_pose_input")
        self.exact(pose, "name", "initial_pose_input.name", INITIAL_POSE.name)
        self.exact(pose, "shape", "initial_pose_input.shape", INITIAL_POSE.as_json())
        self.exact(pose, "units", "initial_pose_input.units", "rad")
        angle_names = self.names(pose, "angle_names", "initial_pose_input.angle_names", N_ANGLES)

        policy = self.choice(doc, "initial_state_policy", "initial_state_policy", SUPPORTED_POLICIES)
        mean = None
        if doc.get("initial_state_mean") is not None:
            mean = self.numbers(doc, "initial_state_mean", "initial_state_mean", N_ANGLES)
        elif policy in POLICIES_NEEDING_MEAN:
            self.fail("initial_state_mean", f"missing, but policy '{policy}' needs {N_ANGLES} training-mean angles")
        policies = doc.get("initial_state_eval_mpjpe_mm")
        if policies is not None and (
            not isinstance(policies, dict) or not all(_is_number(v) and v >= 0 for v in policies.values())
        ):
            self.fail("initial_state_eval_mpjpe_mm", f"is {policies!r}, expected an object of MPJPE figures (mm)")

        self._outputs(doc)
        joints = self.names(doc, "joint_names", "joint_names", N_JOINTS)
        calibrated = self._calibration(doc.get("confidence_calibration"))
        validation = self.obj(doc, "validation", "validation")
        val_mpjpe = None
        validation_extra: dict[str, float] = {}
        if validation is not None:
            val_mpjpe = self.number(validation, "val_mpjpe_mm", "validation.val_mpjpe_mm", optional=True)
            for key, low in OPTIONAL_VALIDATION.items():
                value = self.number(validation, key, f"validation.{key}", optional=True, low=low)
                if value is not None:
                    validation_extra[key] = value
        if doc.get("training_data") is not None and not isinstance(doc.get("training_data"), dict):
            self.fail("training_data", f"expected an object, got {_kind(doc.get('training_data'))}")
        quantization = self.choice(doc, "quantization", "quantization", QUANTIZATIONS)
        opset = self.integer(doc, "opset", "opset", 7, 1000)
        sha = self.text(doc, "source_checkpoint_sha256", "source_checkpoint_sha256")
        if sha is not None and not _SHA256.fullmatch(sha):
            self.fail("source_checkpoint_sha256", f"is {sha!r}, expected 64 lowercase hex digits")
        software = self.text(doc, "software_version", "software_version")
        parity = self._parity(doc, require_parity)
        streaming = self._streaming(doc.get("streaming"), kind)

        if self.problems:
            raise ModelMetadataError(f"{self.where}: model metadata refused — " + "; ".join(self.problems))
        return ModelMetadata(
            raw=doc,
            metadata_version=version,
            model_kind=kind,
            channels=CHANNELS,
            channel_order=order,
            sampling_rate_hz=SAMPLING_RATE_HZ,
            window_samples=WINDOW_SAMPLES,
            recommended_hop_samples=hop,
            units=UNITS,
            normalisation_std_uv=std,
            input_filter=input_filter,
            streaming=streaming,
            angle_names=angle_names,
            initial_state_policy=policy,
            initial_state_mean=mean,
            joint_names=joints,
            confidence_calibrated=calibrated,
            validation_mpjpe_mm=val_mpjpe,
            quantization=quantization,
            opset=opset,
            source_checkpoint_sha256=sha,
            software_version=software,
            parity=parity,
            validation_extra=validation_extra,
        )

    def _outputs(self, doc: Mapping[str, Any]) -> None:
        outputs = self.obj(doc, "outputs", "outputs")
        if outputs is None:
            return
        for name in sorted(set(outputs) - set(OUTPUT_NAMES)):
            self.fail(f"outputs.{name}", f"not an output of the model contract ({list(OUTPUT_NAMES)})")
        for spec in OUTPUTS:
            entry = self.obj(outputs, spec.name, f"outputs.{spec.name}")
            self.exact(entry, "shape", f"outputs.{spec.name}.shape", spec.as_json())

    def _streaming(self, table: Any, kind: str | None) -> StreamingInfo | None:
        if table is None:
            return None
        path = "streaming"
        if not isinstance(table, dict):
            self.fail(path, f"expected an object or null, got {_kind(table)}")
            return None
        if kind != "mode2":
            self.fail(path, "only Mode 2 models stream (the direct baseline has no rollout to stagger)")
            return None
        files = self.obj(table, "files", f"{path}.files")
        if files is not None:
            for part in STREAM_PARTS:
                entry = self.obj(files, part, f"{path}.files.{part}")
                if entry is None:
                    continue
                name = self.text(entry, "file", f"{path}.files.{part}.file")
                if name is not None and ("/" in name or "\\" in name or not name.endswith(".onnx")):
                    self.fail(f"{path}.files.{part}.file", f"is {name!r}, expected a sibling .onnx file name")
                sha = self.text(entry, "sha256", f"{path}.files.{part}.sha256")
                if sha is not None and not _SHA256.fullmatch(sha):
                    self.fail(f"{path}.files.{part}.sha256", f"is {sha!r}, expected 64 lowercase hex digits")
        frame = self.integer(table, "frame_samples", f"{path}.frame_samples", 1, WINDOW_SAMPLES)
        before = self.integer(table, "frame_end_before_window_end", f"{path}.frame_end_before_window_end", 0, 1000)
        frames = self.integer(table, "frames_per_window", f"{path}.frames_per_window", 1, WINDOW_SAMPLES)
        steps = self.integer(table, "steps_per_window", f"{path}.steps_per_window", 1, 10 * WINDOW_SAMPLES)
        engines = table.get("engines")
        if not isinstance(engines, list) or not engines or any(e not in ENGINE_NAMES for e in engines):
            self.fail(f"{path}.engines", f"is {engines!r}, expected a list drawn from {list(ENGINE_NAMES)}")
            engines = None
        default = self.choice(table, "default_engine", f"{path}.default_engine", ENGINE_NAMES)
        if engines is not None and default is not None and default not in engines:
            self.fail(f"{path}.default_engine", f"{default!r} is not among the engines {engines}")
        accuracy = table.get("accuracy") or {}
        if not isinstance(accuracy, dict):
            self.fail(f"{path}.accuracy", f"expected an object, got {_kind(accuracy)}")
            accuracy = {}
        parity = table.get("parity")
        if parity is not None and not isinstance(parity, dict):
            self.fail(f"{path}.parity", f"expected an object or null, got {_kind(parity)}")
            parity = None
        if None in (files, frame, before, frames, steps, engines, default):
            return None
        return StreamingInfo(
            files={part: dict(files[part]) for part in STREAM_PARTS},
            frame_samples=frame,
            frame_end_before_window_end=before,
            frames_per_window=frames,
            steps_per_window=steps,
            engines=tuple(engines),
            default_engine=default,
            accuracy=accuracy,
            parity=parity,
        )

    def _calibration(self, table: Any) -> bool:
        if table is None:
            return False
        path = "confidence_calibration"
        if not isinstance(table, dict):
            self.fail(path, f"expected an object {{x, y}} or null, got {_kind(table)}")
            return False
        x, y = table.get("x"), table.get("y")
        for key, value in (("x", x), ("y", y)):
            if not isinstance(value, list):
                self.fail(f"{path}.{key}", "missing" if key not in table else f"expected a list, got {_kind(value)}")
        if not isinstance(x, list) or not isinstance(y, list):
            return False
        if len(x) != len(y):
            self.fail(f"{path}.x and {path}.y", f"lengths {len(x)} and {len(y)} differ")
            return False
        if not x:  # an empty table: present but not calibrated (the exporter treats it the same way)
            return False
        if len(x) < 2 or not all(_is_number(v) for v in x) or any(b < a for a, b in pairwise(x)):
            self.fail(f"{path}.x", "expected ≥ 2 finite, non-decreasing knots")
            return False
        if not all(_is_number(v) and 0.0 <= v <= 1.0 for v in y):
            self.fail(f"{path}.y", "expected probabilities in [0, 1]")
            return False
        return True

    def _parity(self, doc: Mapping[str, Any], required: bool) -> ParityFigures | None:
        if doc.get("parity") is None:
            if required:
                self.fail("parity", "missing — this file was never parity-checked against PyTorch")
            return None
        parity = self.obj(doc, "parity", "parity")
        if parity is None:
            return None
        windows = self.integer(parity, "windows", "parity.windows", 1, 10**9)
        values = {
            key: self.number(parity, key, f"parity.{key}")
            for key in ("theta_max_abs_rad", "joints_max_abs_mm", "confidence_max_abs")
        }
        optional = {
            key: self.number(parity, key, f"parity.{key}", optional=True, low=-math.inf)
            for key in ("mpjpe_torch_mm", "mpjpe_onnx_mm", "mpjpe_delta_mm")
        }
        return ParityFigures(windows=windows, **values, **optional)


def _describe_list(value: Any) -> str:
    if isinstance(value, list):
        return f"a list of {len(value)}"
    return _kind(value)
