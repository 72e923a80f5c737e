"""Reading checkpoint files safely: ours (plain tensors and dicts) and Meta's Lightning checkpoints.

Meta's `tracking_vemg2pose.ckpt` pickles OmegaConf config objects, so `torch.load(weights_only=True)` refuses
it. Instead of executing arbitrary pickles, `read_checkpoint_safely` uses the restricted unpickler
(training/models/restricted_pickle.py) with this allow-list: torch's
tensor rebuild functions and storages, a few containers, and *inert stand-ins* for every `omegaconf.*`,
`typing.*` and Lightning class (their state is kept as plain data, nothing is called). Any other class is
refused with an error that names it. Neither omegaconf nor Lightning needs to be installed.
"""

from __future__ import annotations

import hashlib
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from firmware_bridge.errors import UserError
from training.models import restricted_pickle
from training.models.restricted_pickle import AllowList, InertRecord


class CheckpointError(UserError, ValueError):
    """A checkpoint file cannot be used; the message names the file and the problem."""


class InertObject(InertRecord):
    """Stands in for a config/framework object from a checkpoint: keeps its pickled state, runs nothing."""

    def __call__(self, *args: Any, **kwargs: Any) -> InertObject:  # e.g. typing.Any used as a callable
        return InertObject(*args, **kwargs)


_INERT_PREFIXES = ("omegaconf", "typing", "pytorch_lightning", "lightning", "lightning_fabric", "hydra")
_ALLOWED = (
    ("collections", "OrderedDict"),
    ("collections", "defaultdict"),
    *(
        ("builtins", t)
        for t in (
            "set",
            "frozenset",
            "slice",
            "dict",
            "list",
            "tuple",
            "object",
            "int",
            "float",
            "bool",
            "str",
            "bytes",
            "complex",
        )
    ),
    ("copyreg", "_reconstructor"),
    ("_codecs", "encode"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch", "Size"),
    ("torch", "device"),
    ("torch", "float32"),
    ("torch", "float64"),
    ("torch", "int64"),
    ("torch.serialization", "_get_layout"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy", "dtype"),
)


def _config_stand_in(module: str, name: str) -> type | None:
    """Every omegaconf / typing / Lightning / hydra class becomes an inert record of its state."""
    if module.split(".")[0] in _INERT_PREFIXES:
        return type(name, (InertObject,), {"__module__": f"inert.{module}"})
    return None


CHECKPOINT_ALLOW_LIST = AllowList.of(
    _ALLOWED,
    allowed_if=lambda module, name: module == "torch" and name.endswith("Storage"),
    stand_in=_config_stand_in,
    refusal="refusing to load {module}.{name} (not a tensor, container or config class)",
)
_restricted_pickle = restricted_pickle.pickle_module(CHECKPOINT_ALLOW_LIST)


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"


def read_checkpoint_safely(path: str | Path) -> dict:
    """Load a checkpoint without executing arbitrary code: weights-only first, the restricted unpickler
    for Lightning files; clear errors for missing, truncated or foreign files."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path}: not a PyTorch checkpoint (not a zip archive: truncated or another format?)")
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError) as error:
        raise CheckpointError(f"{path}: damaged checkpoint archive ({error})") from error
    if bad is not None:
        raise CheckpointError(f"{path}: damaged checkpoint archive (member {bad} fails its CRC)")
    # Unpickling a file is parsing untrusted input: whatever it raises is about the file, so every failure
    # becomes one CheckpointError naming it (the first line of torch's message is the useful one).
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        try:
            content = torch.load(path, map_location="cpu", weights_only=False, pickle_module=_restricted_pickle)
        except pickle.UnpicklingError as error:
            raise CheckpointError(f"{path}: {_first_line(error)}") from error
        except Exception as error:
            raise CheckpointError(f"{path}: unreadable checkpoint ({_first_line(error)})") from error
    except Exception as error:
        raise CheckpointError(f"{path}: unreadable checkpoint ({_first_line(error)})") from error
    if not isinstance(content, dict):
        raise CheckpointError(f"{path}: expected a dict at the top of the checkpoint, got {type(content).__name__}")
    return content
