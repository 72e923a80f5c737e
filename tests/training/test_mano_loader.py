"""MANO files load without chumpy: a file with the real keys and shapes, pickled through chumpy stand-ins."""

from __future__ import annotations

import importlib.util
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse
import torch

from training.hand.fk_numpy import forward_kinematics_np
from training.hand.fk_torch import HandForward
from training.hand.mano_hand import load_mano
from training.hand.mano_loader import ManoFormatError, load_mano_arrays

MANO_PARENTS_ROW = np.array([4294967295, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14])


def _fake_mano_arrays(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    v_template = rng.normal(0, 0.03, (778, 3)) + np.array([0.08, 0.0, 0.0])
    regressor = np.zeros((16, 778))
    for j in range(16):  # each joint averages a few "nearby" vertices, like the real regressor
        idx = rng.choice(778, 6, replace=False)
        regressor[j, idx] = 1.0 / 6
    weights = rng.dirichlet(np.ones(16) * 0.3, 778)
    return {
        "v_template": v_template,
        "J_regressor": scipy.sparse.csc_matrix(regressor),
        "weights": weights,
        "posedirs": rng.normal(0, 1e-3, (778, 3, 135)),
        "shapedirs": rng.normal(0, 1e-3, (778, 3, 10)),
        "kintree_table": np.stack([MANO_PARENTS_ROW, np.arange(16)]),
        "f": rng.integers(0, 778, (1538, 3)),
        "hands_mean": rng.normal(0, 0.1, 45),
        "hands_components": rng.normal(0, 1, (45, 45)),
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }


def _pickle_with_fake_chumpy(arrays: dict, path: Path, protocol: int) -> None:
    """Pickle like the original MANO_RIGHT.pkl: arrays wrapped in `chumpy.ch.Ch` objects."""
    chumpy = types.ModuleType("chumpy")
    chumpy_ch = types.ModuleType("chumpy.ch")

    class Ch:  # mimics the pickled state of a chumpy Ch: the array lives in __dict__['x']
        def __init__(self, x: np.ndarray) -> None:
            self.x = x
            self._dirty_vars = set()

    Ch.__module__ = "chumpy.ch"
    Ch.__qualname__ = "Ch"
    chumpy_ch.Ch = Ch
    chumpy.ch = chumpy_ch
    sys.modules["chumpy"], sys.modules["chumpy.ch"] = chumpy, chumpy_ch
    try:
        wrapped = dict(arrays)
        for key in ("v_template", "weights", "posedirs", "shapedirs"):
            wrapped[key] = Ch(arrays[key])
        with path.open("wb") as handle:
            pickle.dump(wrapped, handle, protocol=protocol)
    finally:
        del sys.modules["chumpy"], sys.modules["chumpy.ch"]


@pytest.mark.parametrize("protocol", [0, 2])
def test_chumpy_pickled_mano_loads_without_chumpy(tmp_path: Path, protocol: int) -> None:
    arrays = _fake_mano_arrays()
    path = tmp_path / "MANO_RIGHT.pkl"
    _pickle_with_fake_chumpy(arrays, path, protocol)
    assert importlib.util.find_spec("chumpy") is None, "chumpy must not be importable for this test to mean anything"
    loaded = load_mano_arrays(path)
    assert np.allclose(loaded["v_template"], arrays["v_template"])
    assert np.allclose(loaded["J_regressor"], arrays["J_regressor"].toarray())
    assert loaded["posedirs"].shape == (778, 3, 135)

    flat = load_mano(path, flat_hand_mean=True)
    rest = arrays["J_regressor"].toarray() @ arrays["v_template"]
    joints = forward_kinematics_np(flat, np.zeros(45))
    assert np.allclose(joints[:16], rest - rest[0], atol=1e-9), "zero pose = regressed rest joints, wrist-relative"
    assert np.allclose(joints[16:], arrays["v_template"][[745, 317, 444, 556, 673]] - rest[0], atol=1e-9)

    curled = load_mano(path, flat_hand_mean=False)
    assert np.allclose(forward_kinematics_np(curled, np.zeros(45)), forward_kinematics_np(flat, arrays["hands_mean"]))

    pose = np.random.default_rng(1).normal(0, 0.3, (3, 45))
    torch_out = HandForward(flat)(torch.tensor(pose, dtype=torch.float64)).numpy()
    assert np.abs(torch_out - forward_kinematics_np(flat, pose)).max() < 1e-6


def test_numpy_converted_pickle_loads(tmp_path: Path) -> None:
    arrays = _fake_mano_arrays(1)
    arrays["J_regressor"] = arrays["J_regressor"].toarray()
    path = tmp_path / "MANO_RIGHT_numpy.pkl"
    path.write_bytes(pickle.dumps(arrays))
    params = load_mano(path)
    assert params.kind == "mano" and params.joints_rest.shape == (16, 3)


def test_bad_mano_files_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"mano\.is\.tue\.mpg\.de"):
        load_mano_arrays(tmp_path / "missing.pkl")
    arrays = _fake_mano_arrays()
    del arrays["posedirs"]
    path = tmp_path / "nopose.pkl"
    path.write_bytes(pickle.dumps(arrays))
    with pytest.raises(ManoFormatError, match="missing 'posedirs'"):
        load_mano_arrays(path)
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(b"cos\nsystem\n(S'echo pwned'\ntR.")
    with pytest.raises(ManoFormatError, match=r"refusing to load class os\.system"):
        load_mano_arrays(evil)
