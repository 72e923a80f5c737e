"""`CheckpointMeta`: everything a Mode 2 / direct-baseline checkpoint says about its model, typed and versioned.

A checkpoint file is `torch.save(meta.to_dict() | {"state_dict": weights})`. The file keeps the flat
layout it has always had (so files written before this module existed load unchanged):

    format_version  int   the meta version (absent in the earliest files: read as 1)
    kind            str   "mode2" or "direct"
    hand_model      table HandModelParams, arrays as tensors
    config          table adapter_init, backbone_input_scale (optional: defaults); from version 4 also arch
                    (mode2 | mode1 | direct), converter_hidden, backbone_finetune (none | decoder); from
                    version 5 confidence_head (ridge | mlp; absent = mlp)
    backbone        table kind, path, sha256, config (required for mode2)
    normalisation   table method, std (µV per channel), units, input_filter (the causal filter's sections)
    training        table command, seed, train/val sessions, train_emg_sha256, windows, minutes, synthetic
    theta_mean, initial_state_mean                    lists of floats
    initial_state_policy, initial_state_eval_mpjpe_mm  str, {policy: mm}
    metrics         table the best epoch's held-out figures (MPJPE, and from version 3 fingertip error,
                    flexion error, the mean pose's MPJPE on the same frames and the skill score)
    confidence_calibration  table x, y knots (+ target, n) written by `mode2 evaluate --write-calibration`

Version rule: a reader loads every version from FIRST_READABLE_VERSION to META_VERSION (older layouts are
upgraded in `from_dict`) and refuses a higher one; version 1 (per-window detrend) is refused with a message
saying to retrain, because its weights belong to a different input stage. Any change to the keys — a new key,
a removed one, a changed type or meaning — bumps META_VERSION, because unknown keys are refused rather than
silently dropped on the next re-save.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from firmware_bridge.emg_filter import FilterSpecError, InputFilter
from training.hand.params import HandModelParams
from training.models.checkpoint_io import CheckpointError

META_VERSION = 5
# 5: config gained confidence_head (ridge | mlp; older files: the seed guide's gradient-trained mlp)
# 4: config gained arch, converter_hidden and backbone_finetune (older files: arch told by the weights — Mode 1's
# fixed angle map — the guide's 128-wide converter, a frozen backbone)
# 3: metrics gained the optional val_fingertip_mm, val_flexion_error_deg, val_mean_pose_mpjpe_mm, val_skill
# (version 2 files, without them, load unchanged)
# version 1 models cut raw windows and detrended each one; version 2 filters the stream causally first
# (firmware_bridge/emg_filter.py) and upsamples causally, so their weights do not fit today's model
FIRST_READABLE_VERSION = 2
KINDS = ("mode2", "direct")
_NOT_META = ("state_dict",)  # the weights live beside the meta in the same file


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}{'…' if len(text) > 60 else ''}"


class _Table:
    """One table of a checkpoint's meta, read with type checks; every error names the file and the dotted key."""

    def __init__(self, data: Any, source: str, where: str = "") -> None:
        self.source, self.where = source, where
        if not isinstance(data, Mapping):
            raise CheckpointError(
                f"{source}: checkpoint meta key {where!r}: expected a table (dict), got {_describe(data)}"
            )
        self.data = data

    def name(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def fail(self, key: str, expected: str) -> CheckpointError:
        got = _describe(self.data[key])
        return CheckpointError(f"{self.source}: checkpoint meta key {self.name(key)!r}: expected {expected}, got {got}")

    def present(self, key: str, required: bool) -> bool:
        if key in self.data and self.data[key] is not None:
            return True
        if required:
            raise CheckpointError(f"{self.source}: checkpoint meta key {self.name(key)!r} is missing")
        return False

    def text(self, key: str, default: str | None = None, *, required: bool = False) -> str | None:
        if not self.present(key, required):
            return default
        if not isinstance(self.data[key], str):
            raise self.fail(key, "a string")
        return self.data[key]

    def integer(self, key: str, default: int | None = None) -> int | None:
        if not self.present(key, False):
            return default
        value = self.data[key]
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise self.fail(key, "an integer")
        return int(value)

    def number(self, key: str, default: float | None = None) -> float | None:
        if not self.present(key, False):
            return default
        value = self.data[key]
        if isinstance(value, bool) or not isinstance(value, int | float | np.number):
            raise self.fail(key, "a number")
        return float(value)

    def flag(self, key: str, default: bool = False) -> bool:
        if not self.present(key, False):
            return default
        if not isinstance(self.data[key], bool | np.bool_):
            raise self.fail(key, "true or false")
        return bool(self.data[key])

    def floats(self, key: str) -> tuple[float, ...] | None:
        if not self.present(key, False):
            return None
        value = self.data[key]
        if isinstance(value, torch.Tensor | np.ndarray):
            value = value.tolist()
        if not isinstance(value, list | tuple) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in value
        ):
            raise self.fail(key, "a list of numbers")
        return tuple(float(v) for v in value)

    def strs(self, key: str) -> tuple[str, ...]:
        if not self.present(key, False):
            return ()
        value = self.data[key]
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise self.fail(key, "a list of strings")
        return tuple(value)

    def table(self, key: str, *, required: bool = False) -> _Table | None:
        """A sub-table; an empty one reads as absent (the earliest files wrote `{}` for "nothing")."""
        if not self.present(key, required):
            return None
        if not isinstance(self.data[key], Mapping):
            raise self.fail(key, "a table (dict)")
        if not self.data[key] and not required:
            return None
        return _Table(self.data[key], self.source, self.name(key))

    def mapping(self, key: str, value_type: type | tuple[type, ...], expected: str) -> dict[str, Any] | None:
        if not self.present(key, False):
            return None
        value = self.data[key]
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and isinstance(v, value_type) and not isinstance(v, bool) for k, v in value.items()
        ):
            raise self.fail(key, expected)
        return dict(value)

    def refuse_unknown(self, known: tuple[str, ...]) -> None:
        unknown = [k for k in self.data if k not in known]
        if unknown:
            raise CheckpointError(
                f"{self.source}: unknown checkpoint meta key {self.name(str(unknown[0]))!r} (this version reads "
                f"{', '.join(known)}): written by a newer or a modified mode2-edge?"
            )


def _names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


ARCHES = ("mode2", "mode1", "direct")
FINETUNE_CHOICES = ("none", "decoder")
CONFIDENCE_HEAD_CHOICES = ("ridge", "mlp")  # training/models/mode2_model.py CONFIDENCE_HEADS


@dataclass(frozen=True)
class ModelConfig:
    adapter_init: str = "geometry"
    backbone_input_scale: float = 1.0
    arch: str = ""  # "" in files before version 4: the loader tells Mode 1 from Mode 2 by the weights
    converter_hidden: int = 128
    backbone_finetune: str = "none"  # "decoder": the backbone's LSTM decoder was trained too
    confidence_head: str = "ridge"  # "mlp" in files before version 5

    @classmethod
    def read(cls, table: _Table | None) -> ModelConfig:
        if table is None:
            return cls(confidence_head="mlp")
        table.refuse_unknown(_names(cls))
        arch = table.text("arch", "") or ""
        if arch and arch not in ARCHES:
            raise table.fail("arch", " or ".join(repr(a) for a in ARCHES))
        finetune = table.text("backbone_finetune", "none") or "none"
        if finetune not in FINETUNE_CHOICES:
            raise table.fail("backbone_finetune", " or ".join(repr(c) for c in FINETUNE_CHOICES))
        hidden = table.integer("converter_hidden", 128)
        if hidden is None or hidden < 1:
            raise table.fail("converter_hidden", "a positive whole number")
        head = table.text("confidence_head", "mlp") or "mlp"
        if head not in CONFIDENCE_HEAD_CHOICES:
            raise table.fail("confidence_head", " or ".join(repr(c) for c in CONFIDENCE_HEAD_CHOICES))
        return cls(
            table.text("adapter_init", "geometry"),
            table.number("backbone_input_scale", 1.0),
            arch,
            hidden,
            finetune,
            head,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "adapter_init": self.adapter_init,
            "backbone_input_scale": self.backbone_input_scale,
            "arch": self.arch,
            "converter_hidden": self.converter_hidden,
            "backbone_finetune": self.backbone_finetune,
            "confidence_head": self.confidence_head,
        }


@dataclass(frozen=True)
class BackboneRecord:
    """Which frozen backbone a Mode 2 model was built around (its weights are in the state_dict)."""

    kind: str
    config: Mapping[str, Any]  # BackboneConfig fields
    path: str = ""
    sha256: str = ""

    @classmethod
    def read(cls, table: _Table) -> BackboneRecord:
        table.refuse_unknown(("kind", "path", "sha256", "config"))
        config = table.table("config", required=True)
        assert config is not None
        return cls(
            kind=table.text("kind", required=True) or "",
            config=dict(config.data),
            path=table.text("path", "") or "",
            sha256=table.text("sha256", "") or "",
        )

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": self.path, "sha256": self.sha256, "config": dict(self.config)}


@dataclass(frozen=True)
class Normalisation:
    std: tuple[float, ...]  # µV per channel, the training EMG's spread after the input filter
    input_filter: Mapping[str, Any]  # InputFilter.to_dict(): applied to the stream before the window is cut
    method: str = "causal input filter on the stream, then divide by the training std"
    units: str = "µV"

    @classmethod
    def read(cls, table: _Table) -> Normalisation:
        table.refuse_unknown(("method", "std", "units", "input_filter"))
        std = table.floats("std")
        if std is None:
            table.present("std", True)
        spec = table.table("input_filter", required=True)
        assert spec is not None
        try:
            InputFilter.from_dict(spec.data, table.name("input_filter"))
        except FilterSpecError as exc:
            raise CheckpointError(f"{table.source}: {exc}") from exc
        return cls(
            std=std or (),
            input_filter=dict(spec.data),
            method=table.text("method", cls.method) or "",
            units=table.text("units", "µV") or "",
        )

    @property
    def filter(self) -> InputFilter:
        return InputFilter.from_dict(self.input_filter)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "std": list(self.std),
            "units": self.units,
            "input_filter": dict(self.input_filter),
        }


@dataclass(frozen=True)
class TrainingRecord:
    """How the model was trained; every field may be absent in files written by tools other than `mode2 train`."""

    command: str = ""
    seed: int | None = None
    train_sessions: tuple[str, ...] = ()
    val_sessions: tuple[str, ...] = ()
    # content fingerprints (session key → sha256 of its EMG): `evaluate` refuses these recordings under any
    # name; None in files written before fingerprints existed
    train_emg_sha256: Mapping[str, str] | None = None
    train_windows: int | None = None
    val_windows: int | None = None
    train_minutes: float | None = None
    synthetic: bool = False

    @classmethod
    def read(cls, table: _Table) -> TrainingRecord:
        table.refuse_unknown(_names(cls))
        return cls(
            command=table.text("command", "") or "",
            seed=table.integer("seed"),
            train_sessions=table.strs("train_sessions"),
            val_sessions=table.strs("val_sessions"),
            train_emg_sha256=table.mapping("train_emg_sha256", str, "a table of session key → sha256 string"),
            train_windows=table.integer("train_windows"),
            val_windows=table.integer("val_windows"),
            train_minutes=table.number("train_minutes"),
            synthetic=table.flag("synthetic"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "seed": self.seed,
            "train_sessions": list(self.train_sessions),
            "val_sessions": list(self.val_sessions),
            "train_emg_sha256": None if self.train_emg_sha256 is None else dict(self.train_emg_sha256),
            "train_windows": self.train_windows,
            "val_windows": self.val_windows,
            "train_minutes": self.train_minutes,
            "synthetic": self.synthetic,
        }


@dataclass(frozen=True)
class ValidationMetrics:
    """The held-out figures of the epoch this checkpoint was saved at."""

    val_mpjpe_mm: float
    val_mpjpe_median_mm: float
    val_loss: float
    epoch: int
    ground_truth: str = "camera labels (MediaPipe→IK) of held-out sessions at the window's last sample"
    # version 3, optional (None in older files): training/scoring/metrics.py defines them
    val_fingertip_mm: float | None = None  # mean error of the 5 fingertips
    val_flexion_error_deg: float | None = None  # mean |Δ flexion| over the 5 fingers (metrics.flexion_deg)
    val_mean_pose_mpjpe_mm: float | None = None  # the training-label mean pose's MPJPE on the same frames
    val_skill: float | None = None  # 1 − val_mpjpe_mm / val_mean_pose_mpjpe_mm (≤ 0: no better than it)

    @classmethod
    def read(cls, table: _Table) -> ValidationMetrics:
        table.refuse_unknown(_names(cls))
        for key in ("val_mpjpe_mm", "val_mpjpe_median_mm", "val_loss", "epoch"):
            table.present(key, True)
        return cls(
            val_mpjpe_mm=table.number("val_mpjpe_mm") or 0.0,
            val_mpjpe_median_mm=table.number("val_mpjpe_median_mm") or 0.0,
            val_loss=table.number("val_loss") or 0.0,
            epoch=table.integer("epoch") or 0,
            ground_truth=table.text("ground_truth", cls.ground_truth) or "",
            val_fingertip_mm=table.number("val_fingertip_mm"),
            val_flexion_error_deg=table.number("val_flexion_error_deg"),
            val_mean_pose_mpjpe_mm=table.number("val_mean_pose_mpjpe_mm"),
            val_skill=table.number("val_skill"),
        )

    def to_dict(self) -> dict[str, Any]:
        optional = {
            "val_fingertip_mm": self.val_fingertip_mm,
            "val_flexion_error_deg": self.val_flexion_error_deg,
            "val_mean_pose_mpjpe_mm": self.val_mean_pose_mpjpe_mm,
            "val_skill": self.val_skill,
        }
        return {
            "val_mpjpe_mm": self.val_mpjpe_mm,
            "val_mpjpe_median_mm": self.val_mpjpe_median_mm,
            "val_loss": self.val_loss,
            "epoch": self.epoch,
            "ground_truth": self.ground_truth,
            **{k: v for k, v in optional.items() if v is not None},
        }


def hand_to_dict(params: HandModelParams) -> dict[str, Any]:
    """The hand model as the checkpoint stores it: arrays as tensors (loadable with weights_only=True)."""
    out: dict[str, Any] = {}
    for f in fields(params):
        value = getattr(params, f.name)
        out[f.name] = torch.as_tensor(value) if isinstance(value, np.ndarray) else value
    return out


def hand_from_dict(data: Mapping[str, Any]) -> HandModelParams:
    values = {k: (v.numpy() if isinstance(v, torch.Tensor) else v) for k, v in data.items()}
    return HandModelParams(**values)


def _read_hand(table: _Table) -> HandModelParams:
    table.refuse_unknown(_names(HandModelParams))
    arrays = [f.name for f in fields(HandModelParams) if f.name not in ("kind", "source")]
    for key in arrays:
        if table.present(key, key != "hands_mean") and not isinstance(table.data[key], torch.Tensor | np.ndarray):
            raise table.fail(key, "an array (tensor)")
    table.text("kind", required=True)
    table.text("source")
    return hand_from_dict({k: v for k, v in table.data.items() if v is not None})


def _read_calibration(table: _Table | None) -> dict[str, Any] | None:
    """The isotonic table of `mode2 evaluate`: knots x, y (equal lengths) plus descriptive entries."""
    if table is None:
        return None
    x, y = table.floats("x"), table.floats("y")
    if x is None or y is None:
        table.present("x" if x is None else "y", True)
    assert x is not None and y is not None
    if len(x) != len(y):
        raise table.fail("y", f"as many knots as x ({len(x)})")
    return {**dict(table.data), "x": list(x), "y": list(y)}


@dataclass(frozen=True, eq=False)  # eq=False: the hand model holds arrays; compare `to_dict()` instead
class CheckpointMeta:
    """What a trained model's checkpoint records besides its weights. Frozen: derive with `with_(…)`."""

    kind: str  # "mode2" or "direct"
    hand_model: HandModelParams
    config: ModelConfig = field(default_factory=ModelConfig)
    backbone: BackboneRecord | None = None  # required for mode2
    normalisation: Normalisation | None = None
    training: TrainingRecord | None = None
    theta_mean: tuple[float, ...] | None = None  # training-label mean θ (the mean-pose baseline)
    initial_state_mean: tuple[float, ...] | None = None  # backbone angles, mean over training windows
    initial_state_policy: str | None = None  # "neutral", "train_mean", "feedback"; "none" for direct
    initial_state_eval_mpjpe_mm: Mapping[str, float] | None = None  # held-out MPJPE per policy
    metrics: ValidationMetrics | None = None
    confidence_calibration: Mapping[str, Any] | None = None
    version: int = META_VERSION

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"CheckpointMeta.kind must be one of {KINDS}, not {self.kind!r}")
        if self.kind == "mode2" and self.backbone is None:
            raise ValueError("a mode2 CheckpointMeta needs its backbone record")

    def with_(self, **changes: Any) -> CheckpointMeta:
        """A copy with some fields changed (dataclasses.replace, spelled for readers)."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The flat table saved in the checkpoint file (the weights are added beside it by the writer)."""
        optional = {
            "backbone": self.backbone.to_dict() if self.backbone else None,
            "normalisation": self.normalisation.to_dict() if self.normalisation else None,
            "training": self.training.to_dict() if self.training else None,
            "theta_mean": None if self.theta_mean is None else list(self.theta_mean),
            "initial_state_mean": None if self.initial_state_mean is None else list(self.initial_state_mean),
            "initial_state_policy": self.initial_state_policy,
            "initial_state_eval_mpjpe_mm": None
            if self.initial_state_eval_mpjpe_mm is None
            else dict(self.initial_state_eval_mpjpe_mm),
            "metrics": self.metrics.to_dict() if self.metrics else None,
            "confidence_calibration": None
            if self.confidence_calibration is None
            else dict(self.confidence_calibration),
        }
        return {
            "format_version": self.version,
            "kind": self.kind,
            "hand_model": hand_to_dict(self.hand_model),
            "config": self.config.to_dict(),
            **{k: v for k, v in optional.items() if v is not None},
        }

    @classmethod
    def from_dict(cls, content: Mapping[str, Any], source: str | Path) -> CheckpointMeta:
        """Validate and read a checkpoint's table (the weights, if present, are ignored). Errors are
        CheckpointErrors naming `source` (the file) and the offending key."""
        table = _Table(content, str(source))
        version = table.integer("format_version", 1)
        assert version is not None
        if version > META_VERSION:
            raise CheckpointError(
                f"{source}: written by a newer mode2-edge (checkpoint meta version {version}; this one reads up to "
                f"{META_VERSION}): update mode2-edge to use it"
            )
        if version < 1:
            raise CheckpointError(f"{source}: checkpoint meta key 'format_version': {version} is not a version")
        if version < FIRST_READABLE_VERSION:
            raise CheckpointError(
                f"{source}: trained by an older mode2-edge whose model detrended each raw window (checkpoint meta "
                f"version {version}); today's model filters the stream causally before the window and its weights "
                "do not carry over: retrain with `mode2 train`"
            )
        table.refuse_unknown(("format_version", *_names(cls), *_NOT_META))
        kind = table.text("kind", required=True)
        if kind not in KINDS:
            raise table.fail("kind", " or ".join(repr(k) for k in KINDS))
        hand_table = table.table("hand_model", required=True)
        assert hand_table is not None
        backbone = table.table("backbone", required=kind == "mode2")
        normalisation = table.table("normalisation")
        training = table.table("training")
        metrics = table.table("metrics")
        return cls(
            kind=kind,
            hand_model=_read_hand(hand_table),
            config=ModelConfig.read(table.table("config")),
            backbone=BackboneRecord.read(backbone) if backbone else None,
            normalisation=Normalisation.read(normalisation) if normalisation else None,
            training=TrainingRecord.read(training) if training else None,
            theta_mean=table.floats("theta_mean"),
            initial_state_mean=table.floats("initial_state_mean"),
            initial_state_policy=table.text("initial_state_policy"),
            initial_state_eval_mpjpe_mm=table.mapping(
                "initial_state_eval_mpjpe_mm", (int, float), "a table of policy → MPJPE in mm"
            ),
            metrics=ValidationMetrics.read(metrics) if metrics else None,
            confidence_calibration=_read_calibration(table.table("confidence_calibration")),
            version=META_VERSION,
        )
