"""Read a MANO model file (`MANO_RIGHT.pkl`) without chumpy and without executing arbitrary pickles.

The original files are Python-2 pickles whose arrays are chumpy `Ch` objects and whose J_regressor is
a scipy sparse matrix. The restricted unpickler (training/models/restricted_pickle.py), with this
module's allow-list, turns every chumpy and scipy.sparse class into an inert record, from which the
arrays are taken; numpy's own array reconstructors are the only callables allowed. Numpy-converted
pkls (plain arrays) load through the same path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from firmware_bridge.errors import UserError
from training.models import restricted_pickle
from training.models.restricted_pickle import AllowList, InertRecord

MANO_KEYS = {
    "v_template": (778, 3),
    "J_regressor": (16, 778),
    "weights": (778, 16),
    "posedirs": (778, 3, 135),
    "shapedirs": (778, 3, 10),
    "kintree_table": (2, 16),
    "f": (1538, 3),
}
WHERE_TO_GET_MANO = "register and download it from https://mano.is.tue.mpg.de (MANO is licensed; we never ship it)"


class ManoFormatError(UserError, ValueError):
    pass


class _Inert(InertRecord):
    """Stands in for a chumpy / scipy.sparse object: keeps the pickled state, executes nothing."""

    # pickle protocol 2 builds objects with cls.__new__(cls, *args)
    def __reduce__(self) -> Any:  # pragma: no cover - never re-pickled
        raise TypeError("inert stand-in")


class _InertChumpy(_Inert):
    kind = "chumpy"


class _InertSparse(_Inert):
    kind = "sparse"
    format = "csc"


_NUMPY_ALLOWED = (
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),  # how Python 3 pickles bytes at protocols < 3 (array buffers); pure data
    ("copyreg", "_reconstructor"),
    *(("builtins", name) for name in ("object", "set", "frozenset", "slice", "tuple", "list", "dict")),
)


def _array_stand_in(module: str, name: str) -> type | None:
    """chumpy and scipy.sparse objects become inert records; their arrays are taken out afterwards."""
    if module == "chumpy" or module.startswith("chumpy."):
        return _InertChumpy
    if module.startswith("scipy.sparse"):
        return type(name, (_InertSparse,), {"format": "csr" if "csr" in name else "csc"})
    return None


MANO_ALLOW_LIST = AllowList.of(
    _NUMPY_ALLOWED, stand_in=_array_stand_in, refusal="refusing to load class {module}.{name} from a MANO file"
)


def _to_array(value: Any, key: str, path: Path) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, _InertSparse):
        return _sparse_to_dense(value, key, path)
    if isinstance(value, _InertChumpy):
        state = value.state
        if isinstance(state, dict):
            if isinstance(state.get("x"), np.ndarray):
                return state["x"]
            for candidate in ("a", "r", "_x"):
                if isinstance(state.get(candidate), np.ndarray):
                    return state[candidate]
            arrays = [v for v in state.values() if isinstance(v, np.ndarray)]
            if len(arrays) == 1:
                return arrays[0]
        if isinstance(state, np.ndarray):
            return state
        raise ManoFormatError(f"{path}: {key}: chumpy object without a stored array (a derived expression?)")
    try:
        return np.asarray(value)
    except Exception as error:
        raise ManoFormatError(f"{path}: {key}: cannot read as an array ({type(value).__name__})") from error


def _sparse_to_dense(value: _InertSparse, key: str, path: Path) -> np.ndarray:
    state = value.state if isinstance(value.state, dict) else {}
    try:
        data, indices, indptr = (np.asarray(state[k]) for k in ("data", "indices", "indptr"))
        shape = tuple(state.get("_shape") or state.get("shape"))
    except (KeyError, TypeError) as error:
        raise ManoFormatError(f"{path}: {key}: unreadable sparse matrix") from error
    fmt = getattr(value, "format", "csc")
    dense = np.zeros(shape)
    major = shape[1] if fmt == "csc" else shape[0]
    for outer in range(major):
        for pos in range(indptr[outer], indptr[outer + 1]):
            if fmt == "csc":
                dense[indices[pos], outer] = data[pos]
            else:
                dense[outer, indices[pos]] = data[pos]
    return dense


def load_mano_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of a MANO pkl as float64 numpy arrays, checked against the real file's shapes."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"MANO model file not found: {path} — {WHERE_TO_GET_MANO}")
    if not path.is_file():
        raise ManoFormatError(f"{path}: not a file — {WHERE_TO_GET_MANO}")
    with path.open("rb") as handle:
        try:
            raw = restricted_pickle.load(handle, MANO_ALLOW_LIST, encoding="latin1")
        except Exception as error:  # parsing an untrusted file: whatever it raises is about the file
            first = (str(error).strip().splitlines() or [""])[0]
            raise ManoFormatError(f"{path}: not a readable MANO pickle ({type(error).__name__}: {first})") from error
    if not isinstance(raw, dict):
        raise ManoFormatError(f"{path}: expected a dict of MANO arrays, got {type(raw).__name__}")
    arrays: dict[str, np.ndarray] = {}
    for key, shape in MANO_KEYS.items():
        if key not in raw:
            raise ManoFormatError(f"{path}: missing '{key}' (is this a MANO hand model file?)")
        try:
            array = np.asarray(_to_array(raw[key], key, path), dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise ManoFormatError(f"{path}: {key}: not a numeric array ({error})") from error
        if array.shape != shape:
            raise ManoFormatError(f"{path}: {key}: expected shape {shape}, got {array.shape}")
        arrays[key] = array
    mean = raw.get("hands_mean")
    arrays["hands_mean"] = np.zeros(45) if mean is None else np.asarray(_to_array(mean, "hands_mean", path), float)
    if arrays["hands_mean"].size != 45:
        raise ManoFormatError(f"{path}: hands_mean: expected 45 values, got {arrays['hands_mean'].size}")
    parents = arrays["kintree_table"][0].astype(np.int64)
    expected = np.array([0, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14])
    if not np.array_equal(parents[1:], expected[1:]):
        raise ManoFormatError(f"{path}: kintree_table: joint hierarchy is not MANO's right-hand layout")
    return arrays
