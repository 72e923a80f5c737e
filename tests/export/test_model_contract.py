"""The model contract: every field of the metadata is checked, and `load_model` checks the real graph.

The good document comes from the exporter's own `build_metadata`, so these tests track what export-onnx
really writes. Graphs are small ONNX files built with `onnx.helper` and run by onnxruntime.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from export.metadata import build_metadata
from firmware_bridge.emg_filter import InputFilter
from runtime.model_contract import (
    CONFIDENCE,
    EMG,
    INITIAL_POSE,
    INPUT_NAMES,
    METADATA_KEY,
    METADATA_VERSION,
    OUTPUT_NAMES,
    OUTPUTS,
    ModelMetadata,
    ModelMetadataError,
    TensorSpec,
)
from runtime.model_metadata import LoadedModel, load_model, read_model_metadata, validate_metadata
from training.hand.open_hand import open_hand_model
from training.models.checkpoint_meta import (
    BackboneRecord,
    CheckpointMeta,
    Normalisation,
    TrainingRecord,
    ValidationMetrics,
)

SHA = "ab" * 32
PARITY = {
    "windows": 21,
    "theta_max_abs_rad": 4e-7,
    "joints_max_abs_mm": 5e-5,
    "confidence_max_abs": 5e-7,
    "mpjpe_torch_mm": 26.3,
    "mpjpe_onnx_mm": 26.3,
    "mpjpe_delta_mm": -2e-6,
}


def checkpoint_meta(**overrides: Any) -> CheckpointMeta:
    """What a Mode 2 checkpoint's metadata holds, as far as the exporter reads it."""
    meta = CheckpointMeta(
        kind="mode2",
        hand_model=replace(open_hand_model(), source="open"),
        normalisation=Normalisation(
            method="causal input filter, then z-score",
            std=(90.0, 140.0, 50.0, 60.0, 70.0, 80.0, 55.0, 65.0),
            input_filter=InputFilter.design(500.0).to_dict(),
        ),
        initial_state_policy="train_mean",
        initial_state_mean=tuple(0.01 * i for i in range(20)),
        initial_state_eval_mpjpe_mm={"neutral": 31.3, "train_mean": 26.3, "feedback": 27.8},
        training=TrainingRecord(train_sessions=("s01/r01",), val_sessions=("s01/r03",), synthetic=True),
        metrics=ValidationMetrics(val_mpjpe_mm=26.3, val_mpjpe_median_mm=26.1, val_loss=0.05, epoch=10),
        confidence_calibration={"x": [0.1, 0.5, 0.9], "y": [0.2, 0.6, 0.95]},
        backbone=BackboneRecord(kind="standin_backbone", sha256=SHA, config={}),
    )
    if overrides.get("initial_state_mean") is not None:
        overrides["initial_state_mean"] = tuple(overrides["initial_state_mean"])
    return meta.with_(**overrides)


def good_doc(**overrides: Any) -> dict[str, Any]:
    """A document as read back from a file: through JSON, like onnxruntime hands it to us."""
    doc = build_metadata(checkpoint_meta(**overrides), SHA, 17, dict(PARITY))
    return json.loads(json.dumps(doc))


def test_the_exporters_document_parses_into_typed_fields() -> None:
    meta = ModelMetadata.parse(good_doc(), "model.onnx")
    assert meta.channels == 8 and meta.sampling_rate_hz == 500.0 and meta.window_samples == 1000
    assert meta.recommended_hop_samples == 500 and meta.units == "uV" and meta.window_seconds == 2.0
    assert meta.initial_state_policy == "train_mean" and meta.initial_state_mean == tuple(0.01 * i for i in range(20))
    assert len(meta.joint_names) == 21 and meta.joint_names[16] == "thumb_tip" and len(meta.angle_names) == 20
    assert meta.quantization == "none" and meta.confidence_calibrated and meta.validation_mpjpe_mm == 26.3
    assert meta.parity is not None and meta.parity.windows == 21 and meta.parity.mpjpe_delta_mm == -2e-6
    assert meta.metadata_version == METADATA_VERSION and meta.raw["model_kind"] == "mode2"
    with pytest.raises(AttributeError):
        meta.window_samples = 500  # type: ignore[misc]  # frozen


@pytest.mark.parametrize(
    "doc", [[], None, "mode2", 3, [good_doc()]], ids=["list", "null", "string", "number", "nested"]
)
def test_metadata_that_is_not_a_json_object_is_refused(doc: Any) -> None:
    with pytest.raises(ModelMetadataError, match="must be a JSON object"):
        ModelMetadata.parse(doc, "m.onnx")


def test_all_problems_are_reported_together_naming_file_and_fields() -> None:
    doc = good_doc()
    doc["input"].update(channels=16, sampling_rate_hz=2000.0, units="mV", window_samples=500)
    doc["initial_state_policy"] = "oracle"
    doc["initial_state_mean"] = [0.1, 0.2, float("nan")]
    with pytest.raises(ModelMetadataError) as info:
        validate_metadata(json.loads(json.dumps(doc)), where="arm/model.onnx")
    message = str(info.value)
    assert message.startswith("arm/model.onnx:")
    for text in (
        "input.channels: is 16",
        "input.sampling_rate_hz: is 2000.0",
        "input.units: is 'mV'",
        "input.window_samples: is 500",
        "initial_state_policy: is 'oracle'",
        "initial_state_mean: is a list of 3",
    ):
        assert text in message


def test_a_newer_metadata_version_is_refused_with_an_upgrade_hint() -> None:
    doc = good_doc()
    doc["metadata_version"] = METADATA_VERSION + 1
    with pytest.raises(ModelMetadataError, match="newer than this runtime"):
        ModelMetadata.parse(doc, "m.onnx")


@pytest.mark.parametrize("policy", ["train_mean", "feedback"])
def test_a_policy_that_needs_the_training_mean_requires_it(policy: str) -> None:
    with pytest.raises(ModelMetadataError, match="initial_state_mean: missing"):
        ModelMetadata.parse(good_doc(initial_state_policy=policy, initial_state_mean=None), "m.onnx")
    meta = ModelMetadata.parse(good_doc(initial_state_policy="neutral", initial_state_mean=None), "m.onnx")
    assert meta.initial_state_mean is None


def test_parity_is_required_of_a_file_but_not_of_the_exporters_draft() -> None:
    doc = good_doc()
    doc["parity"] = None
    with pytest.raises(ModelMetadataError, match="parity: missing — this file was never parity-checked"):
        ModelMetadata.parse(doc, "m.onnx")
    assert ModelMetadata.parse(doc, "draft", require_parity=False).parity is None


# --- every mutation that breaks one field is refused, naming that field ---

DELETE = object()
not_finite = st.sampled_from([math.nan, math.inf, -math.inf])
junk = st.one_of(st.none(), st.booleans(), st.text(max_size=5), st.lists(st.integers(), max_size=3), st.just({}))


def ints_except(*allowed: int, low: int = -(10**6), high: int = 10**6) -> st.SearchStrategy[int]:
    return st.integers(low, high).filter(lambda v: v not in allowed)


def lists_of(length_not: int, element: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Any]]:
    return st.lists(element, max_size=length_not + 3).filter(lambda v: len(v) != length_not)


names = st.text("abcdefgh", min_size=1, max_size=4)
BREAKS: dict[tuple[str, ...], st.SearchStrategy[Any]] = {
    ("metadata_version",): st.one_of(st.integers(-5, 0), junk, st.just(1.0), st.just(DELETE)),
    ("model_kind",): st.one_of(st.text(max_size=6).filter(lambda v: v not in ("mode2", "direct")), junk),
    ("input",): st.one_of(st.none(), st.lists(st.integers(), max_size=2), st.text(max_size=3), st.just(DELETE)),
    ("input", "name"): st.one_of(st.text(max_size=6).filter(lambda v: v != "emg"), junk, st.just(DELETE)),
    ("input", "shape"): st.one_of(
        st.lists(st.one_of(st.integers(0, 2000), st.just("batch")), max_size=4), st.just(["batch", 3])
    ),
    ("input", "channels"): st.one_of(ints_except(8), st.just(8.5), junk, st.just(DELETE)),
    ("input", "sampling_rate_hz"): st.one_of(
        st.floats(allow_nan=False).filter(lambda v: v != 500.0), not_finite, junk, st.just(DELETE)
    ),
    ("input", "window_samples"): st.one_of(ints_except(1000), st.just(500), junk, st.just(DELETE)),
    ("input", "window_seconds"): st.one_of(st.floats(0, 100).filter(lambda v: v != 2.0), not_finite),
    ("input", "units"): st.one_of(st.sampled_from(["mV", "V", "µV", "UV", ""]), junk, st.just(DELETE)),
    ("input", "channel_order"): st.one_of(lists_of(8, names), st.just(["a"] * 8), junk),
    ("input", "recommended_hop_samples"): st.one_of(
        st.integers(-10, 0), st.integers(1001, 10**6), st.just(250.0), junk, st.just(DELETE)
    ),
    ("input", "input_filter"): st.one_of(junk, st.just(DELETE), st.just({"kind": "ba", "b": [1.0], "a": [1.0]})),
    ("input", "normalisation_std_uv"): st.one_of(
        lists_of(8, st.floats(1, 100)), st.lists(st.one_of(not_finite, st.floats(-10, 0)), min_size=8, max_size=8)
    ),
    ("initial_pose_input",): st.one_of(st.none(), st.text(max_size=3), st.just(DELETE)),
    ("initial_pose_input", "name"): st.one_of(st.text(max_size=6).filter(lambda v: v != "initial_pose"), junk),
    ("initial_pose_input", "shape"): st.lists(st.integers(0, 50), max_size=3),
    ("initial_pose_input", "units"): st.sampled_from(["deg", "", None]),
    ("initial_pose_input", "angle_names"): st.one_of(lists_of(20, names), junk),
    ("initial_state_policy",): st.one_of(
        st.text(max_size=8).filter(lambda v: v not in ("neutral", "train_mean", "feedback", "none")), junk
    ),
    ("initial_state_mean",): st.one_of(
        lists_of(20, st.floats(-3, 3)),
        st.lists(st.floats(-3, 3), min_size=20, max_size=20).map(lambda v: [*v[:-1], math.nan]),
        st.just([0.1, 0.2, 0.3]),
        st.text(max_size=3),
        st.just(DELETE),  # the good document's policy (train_mean) needs it
    ),
    ("initial_state_eval_mpjpe_mm",): st.one_of(st.just({"neutral": -1.0}), st.just({"x": "y"}), st.just([1.0])),
    ("outputs",): st.one_of(st.none(), st.lists(st.integers(), max_size=2), st.just(DELETE)),
    ("outputs", "theta"): st.one_of(st.none(), st.just(DELETE), st.text(max_size=3)),
    ("outputs", "joints", "shape"): st.one_of(st.just(["batch", 21]), st.just(["batch", 3, 21]), junk),
    ("outputs", "confidence", "shape"): st.one_of(st.just(["batch", 1]), st.just([]), junk),
    ("outputs", "logits"): st.just({"shape": ["batch", 2]}),
    ("joint_names",): st.one_of(lists_of(21, names), st.just(["j"] * 21), junk, st.just(DELETE)),
    ("confidence_calibration",): st.one_of(st.text(max_size=3), st.lists(st.floats(0, 1), max_size=3)),
    ("confidence_calibration", "x"): st.one_of(
        st.just([0.9, 0.1, 0.5]), st.just([0.1, math.nan, 0.9]), st.just([0.5]), st.just("x")
    ),
    ("confidence_calibration", "y"): st.one_of(st.just([0.2, 1.5, 0.9]), st.just([-0.1, 0.5, 0.9]), st.just([0.5])),
    ("validation",): st.one_of(st.none(), st.text(max_size=3), st.just(DELETE)),
    ("validation", "val_mpjpe_mm"): st.one_of(st.floats(max_value=-1e-9), not_finite, st.text(max_size=3)),
    ("training_data",): st.one_of(st.text(max_size=3), st.lists(st.integers(), max_size=2)),
    ("quantization",): st.one_of(st.sampled_from(["int8", "fp16", "dynamic", ""]), junk, st.just(DELETE)),
    ("opset",): st.one_of(st.integers(-5, 6), st.just(17.0), junk, st.just(DELETE)),
    ("source_checkpoint_sha256",): st.one_of(
        st.text("0123456789abcdef", max_size=70).filter(lambda v: len(v) != 64), st.just("AB" * 32), junk
    ),
    ("software_version",): st.one_of(st.none(), st.integers(), st.just(DELETE)),
    ("parity",): st.one_of(st.none(), st.text(max_size=3), st.lists(st.floats(), max_size=2), st.just(DELETE)),
    ("parity", "windows"): st.one_of(st.integers(-5, 0), st.just(2.5), junk, st.just(DELETE)),
    ("parity", "theta_max_abs_rad"): st.one_of(st.floats(max_value=-1e-9), not_finite, junk, st.just(DELETE)),
    ("parity", "joints_max_abs_mm"): st.one_of(not_finite, st.text(max_size=3), st.just(DELETE)),
    ("parity", "mpjpe_delta_mm"): st.one_of(not_finite, st.text(max_size=3), st.just([1.0])),
}
GOOD = good_doc()


def field_name(path: tuple[str, ...]) -> str:
    return ".".join(path)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), path=st.sampled_from(sorted(BREAKS)))
def test_every_broken_field_is_refused_and_named(data: st.DataObject, path: tuple[str, ...]) -> None:
    value = data.draw(BREAKS[path], label=field_name(path))
    doc = copy.deepcopy(GOOD)
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    if value is DELETE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    read_back = json.loads(json.dumps(doc))  # NaN/inf survive this, as they do in a file
    with pytest.raises(ModelMetadataError) as info:
        ModelMetadata.parse(read_back, "arm/model.onnx")
    message = str(info.value)
    assert message.startswith("arm/model.onnx:")
    assert field_name(path) in message, message


finite = st.floats(-3, 3, allow_nan=False)
calibration = st.integers(2, 8).flatmap(
    lambda n: st.tuples(
        st.lists(st.floats(0, 1), min_size=n, max_size=n).map(sorted),
        st.lists(st.floats(0, 1), min_size=n, max_size=n),
    )
)


@settings(max_examples=60, deadline=None)
@given(
    policy=st.sampled_from(["neutral", "train_mean", "feedback", "none"]),
    mean=st.one_of(st.none(), st.lists(finite, min_size=20, max_size=20)),
    table=st.one_of(st.none(), calibration),
    hop=st.integers(1, 1000),
    quantization=st.sampled_from(["none", "int8-dynamic"]),
    figures=st.lists(st.floats(0, 100), min_size=4, max_size=4),
    kind=st.sampled_from(["mode2", "direct"]),
)
def test_good_documents_round_trip_through_json(
    policy: str,
    mean: list[float] | None,
    table: tuple[list[float], list[float]] | None,
    hop: int,
    quantization: str,
    figures: list[float],
    kind: str,
) -> None:
    if mean is None and policy in ("train_mean", "feedback"):
        mean = [0.0] * 20
    calibration_doc = None if table is None else {"x": table[0], "y": table[1]}
    doc = build_metadata(
        checkpoint_meta(kind=kind, initial_state_policy=policy, initial_state_mean=mean, confidence_calibration=None),
        SHA,
        17,
        {**PARITY, "theta_max_abs_rad": figures[0], "joints_max_abs_mm": figures[1], "mpjpe_delta_mm": figures[2]},
        quantization=quantization,
    )
    doc["confidence_calibration"] = calibration_doc
    doc["input"]["recommended_hop_samples"] = hop
    meta = ModelMetadata.parse(doc, "m.onnx")
    again = ModelMetadata.parse(json.loads(json.dumps(meta.raw)), "m.onnx")
    assert again == meta
    assert meta.model_kind == kind and meta.initial_state_policy == policy and meta.quantization == quantization
    assert meta.initial_state_mean == (None if mean is None else tuple(mean))
    assert meta.recommended_hop_samples == hop and meta.confidence_calibrated == (table is not None)
    assert meta.parity is not None and meta.parity.theta_max_abs_rad == figures[0]


# --- load_model: the file and the real graph ---


def value_info(spec: TensorSpec, *, dtype: int = TensorProto.FLOAT) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(spec.name, dtype, list(spec.shape))


def contract_graph(path: Path, doc: Any, *, inputs: list[onnx.ValueInfoProto] | None = None) -> Path:
    """A tiny model with the contract's interface (outputs computed from `initial_pose`), carrying `doc`."""
    rng = np.random.default_rng(0)

    def weight(name: str, cols: int) -> onnx.TensorProto:
        return numpy_helper.from_array(rng.standard_normal((20, cols)).astype(np.float32), name)

    nodes = [
        helper.make_node("MatMul", ["initial_pose", "w_theta"], ["theta"]),
        helper.make_node("MatMul", ["initial_pose", "w_joints"], ["joints_flat"]),
        helper.make_node("Reshape", ["joints_flat", "joints_shape"], ["joints"]),
        helper.make_node("Identity", ["initial_pose"], ["angles"]),
        helper.make_node("Sigmoid", ["initial_pose"], ["squashed"]),
        helper.make_node("ReduceMean", ["squashed"], ["confidence"], axes=[1], keepdims=0),
        helper.make_node("Identity", ["initial_pose"], ["feedback_angles"]),
    ]
    graph = helper.make_graph(
        nodes,
        "contract",
        inputs if inputs is not None else [value_info(EMG), value_info(INITIAL_POSE)],
        [value_info(spec) for spec in OUTPUTS],
        initializer=[
            weight("w_theta", 45),
            weight("w_joints", 63),
            numpy_helper.from_array(np.array([-1, 21, 3], np.int64), "joints_shape"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if doc is not None:
        model.metadata_props.add(key=METADATA_KEY, value=doc if isinstance(doc, str) else json.dumps(doc))
    onnx.save(model, str(path))
    return path


def identity_graph(path: Path, doc: Any, input_spec: TensorSpec, outputs: tuple[str, ...] = OUTPUT_NAMES) -> Path:
    """The issue's probe: Identity graphs with the contract's names but not its shapes or types."""
    nodes = [helper.make_node("Identity", [input_spec.name], [name]) for name in outputs]
    graph = helper.make_graph(
        nodes,
        "identity",
        [value_info(input_spec)],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, list(input_spec.shape)) for name in outputs],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    model.metadata_props.add(key=METADATA_KEY, value=json.dumps(doc))
    onnx.save(model, str(path))
    return path


def test_load_model_gives_a_session_the_checked_metadata_and_the_files_hash(tmp_path: Path) -> None:
    path = contract_graph(tmp_path / "model.onnx", GOOD)
    loaded = load_model(path, threads=2)
    assert isinstance(loaded, LoadedModel) and loaded.path == path
    assert loaded.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert loaded.meta == ModelMetadata.parse(GOOD, "x") and loaded.meta.window_samples == 1000
    assert loaded.session.get_providers() == ["CPUExecutionProvider"]
    options = loaded.session.get_session_options()
    assert options.intra_op_num_threads == 2 and options.inter_op_num_threads == 1
    out = dict(
        zip(
            OUTPUT_NAMES,
            loaded.session.run(
                list(OUTPUT_NAMES),
                {"emg": np.zeros((3, 8, 1000), np.float32), "initial_pose": np.ones((3, 20), np.float32)},
            ),
            strict=True,
        )
    )
    assert out["joints"].shape == (3, 21, 3) and out[CONFIDENCE.name].shape == (3,)
    assert read_model_metadata(path) == GOOD


@pytest.mark.parametrize(
    ("input_spec", "outputs", "named"),
    [
        (TensorSpec("emg", ("batch", 3)), OUTPUT_NAMES, "input 'emg' has shape ('batch', 3)"),
        (TensorSpec("emg", ("batch", 8, 1000)), OUTPUT_NAMES, "no input 'initial_pose'"),
        (TensorSpec("initial_pose", ("batch", 20)), OUTPUT_NAMES[:-1], "no output 'feedback_angles'"),
        (TensorSpec("x", ("batch", 8, 1000)), OUTPUT_NAMES, "unexpected input 'x'"),
    ],
    ids=["emg-batch-3", "no-initial-pose", "missing-output", "unknown-input"],
)
def test_a_graph_that_breaks_the_contract_is_refused_despite_copied_metadata(
    tmp_path: Path, input_spec: TensorSpec, outputs: tuple[str, ...], named: str
) -> None:
    path = identity_graph(tmp_path / "impostor.onnx", GOOD, input_spec, outputs)
    with pytest.raises(ModelMetadataError) as info:
        load_model(path)
    message = str(info.value)
    assert str(path) in message and "does not match the model contract" in message and named in message


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda i: [value_info(EMG, dtype=TensorProto.DOUBLE), i[1]], "input 'emg' is tensor(double)"),
        (lambda i: [helper.make_tensor_value_info("emg", TensorProto.FLOAT, ["batch", 8, "n"]), i[1]], "axis 2"),
        (lambda i: [helper.make_tensor_value_info("emg", TensorProto.FLOAT, [1, 8, 1000]), i[1]], None),
        (lambda i: [helper.make_tensor_value_info("emg", TensorProto.FLOAT, ["batch", 8, 500]), i[1]], "axis 2"),
    ],
    ids=["double", "symbolic-window", "fixed-batch-1-is-fine", "window-500"],
)
def test_input_types_and_fixed_sizes_are_checked(tmp_path: Path, change: Any, named: str | None) -> None:
    inputs = change([value_info(EMG), value_info(INITIAL_POSE)])
    path = contract_graph(tmp_path / "model.onnx", GOOD, inputs=inputs)
    if named is None:
        assert load_model(path).meta.channels == 8
        return
    with pytest.raises(ModelMetadataError, match="does not match the model contract") as info:
        load_model(path)
    assert named in str(info.value)


def _good_bytes(tmp_path: Path) -> bytes:
    return contract_graph(tmp_path / "source.onnx", GOOD).read_bytes()


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda p, good: None, "no such model file"),
        (lambda p, good: p.write_bytes(b""), "empty file (0 bytes)"),
        (lambda p, good: p.write_bytes(good[: len(good) // 2]), "not a loadable ONNX model"),
        (lambda p, good: p.write_text("this is a text file, not a model\n"), "not a loadable ONNX model"),
        (lambda p, good: p.mkdir(), "is a folder"),
    ],
    ids=["missing", "zero-length", "truncated", "text", "directory"],
)
def test_a_file_that_is_not_a_model_gives_a_clear_error_naming_it(tmp_path: Path, make: Any, says: str) -> None:
    path = tmp_path / "model.onnx"
    make(path, _good_bytes(tmp_path))
    with pytest.raises(ModelMetadataError) as info:
        load_model(path)
    message = str(info.value)
    assert message.startswith(f"{path}:") and says in message


@pytest.mark.parametrize(
    ("doc", "says"),
    [
        (None, "no 'mode2' metadata"),
        ("{not json", "not valid JSON"),
        ("[]", "must be a JSON object, got a list"),
        ("null", "must be a JSON object, got null"),
        ('"mode2"', "must be a JSON object, got a string"),
    ],
    ids=["absent", "not-json", "list", "null", "string"],
)
def test_metadata_that_is_absent_or_not_an_object_is_refused(tmp_path: Path, doc: str | None, says: str) -> None:
    path = contract_graph(tmp_path / "model.onnx", doc)
    with pytest.raises(ModelMetadataError, match=says):
        load_model(path)


def test_nan_in_the_file_is_refused_at_load(tmp_path: Path) -> None:
    doc = copy.deepcopy(GOOD)
    doc["initial_state_mean"][4] = math.nan
    path = contract_graph(tmp_path / "model.onnx", json.dumps(doc))
    with pytest.raises(ModelMetadataError, match="initial_state_mean: is a list of 20, expected 20 finite numbers"):
        load_model(path)


def test_the_contract_module_imports_without_torch_numpy_or_onnxruntime() -> None:
    import subprocess
    import sys

    script = (
        "import sys\n"
        "for name in ('torch', 'numpy', 'onnxruntime', 'onnx'): sys.modules[name] = None\n"
        "import runtime.model_contract as c\n"
        "print(c.INPUT_NAMES, c.OUTPUT_NAMES, c.METADATA_KEY)\n"
    )
    repo = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "-c", script], cwd=repo, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{INPUT_NAMES} {OUTPUT_NAMES} mode2"
