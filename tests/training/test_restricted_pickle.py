"""One restricted unpickler, each caller its allow-list: a global outside the list is refused and never run."""

from __future__ import annotations

import io
import pickle
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from training.hand.mano_loader import MANO_ALLOW_LIST, ManoFormatError, load_mano_arrays
from training.models import restricted_pickle
from training.models.checkpoint_io import CHECKPOINT_ALLOW_LIST, CheckpointError, read_checkpoint_safely
from training.models.restricted_pickle import AllowList, RefusedGlobal


def leave_mark(mark: str) -> str:
    Path(mark).write_text("ran")
    return mark


class _LeavesAMark:
    """Plain pickle would call `leave_mark` on loading this: the mark file proves whether a global was run."""

    def __init__(self, mark: Path) -> None:
        self.mark = mark

    def __reduce__(self):
        return (leave_mark, (str(self.mark),))


def test_the_mark_proves_a_call(tmp_path: Path) -> None:
    pickle.loads(pickle.dumps(_LeavesAMark(tmp_path / "mark.txt")))  # plain pickle: runs it
    assert (tmp_path / "mark.txt").read_text() == "ran"


def test_the_allow_list_is_the_callers_parameter() -> None:
    data = pickle.dumps({"share": Fraction(1, 3)})
    with pytest.raises(RefusedGlobal, match=r"refusing to load fractions\.Fraction \(not on the allow-list\)"):
        restricted_pickle.load(io.BytesIO(data), AllowList.of([("builtins", "dict")]))
    allowed = AllowList.of([("fractions", "Fraction")])
    assert restricted_pickle.load(io.BytesIO(data), allowed) == {"share": Fraction(1, 3)}


def test_python2_names_are_checked_under_their_python3_names() -> None:
    data = pickle.dumps({1, 2}, protocol=0)  # names __builtin__.set
    assert b"__builtin__" in data
    assert restricted_pickle.load(io.BytesIO(data), AllowList.of([("builtins", "set")])) == {1, 2}


def test_a_stand_in_replaces_a_class_without_importing_it() -> None:
    data = b"cfictional.module\nThing\n)\x81}S'x'\nK\x01sb."  # NEWOBJ + BUILD of a module that does not exist
    inert = type("Inert", (restricted_pickle.InertRecord,), {})
    loaded = restricted_pickle.load(io.BytesIO(data), AllowList.of([], stand_in=lambda m, n: inert))
    assert isinstance(loaded, inert) and loaded.state == {"x": 1}


def test_a_checkpoint_naming_a_class_off_its_list_is_refused_and_not_run(tmp_path: Path) -> None:
    mark = tmp_path / "mark.txt"
    path = tmp_path / "payload.ckpt"
    torch.save({"state_dict": {}, "payload": _LeavesAMark(mark)}, path)
    with pytest.raises(CheckpointError, match=rf"{path}: .*refusing to load {__name__}\.leave_mark \(not a tensor"):
        read_checkpoint_safely(path)
    assert not mark.exists()
    assert ("torch._utils", "_rebuild_tensor_v2") in CHECKPOINT_ALLOW_LIST.allowed


def test_a_mano_file_naming_a_class_off_its_list_is_refused_and_not_run(tmp_path: Path) -> None:
    mark = tmp_path / "mark.txt"
    path = tmp_path / "MANO_RIGHT.pkl"
    path.write_bytes(pickle.dumps({"v_template": np.zeros((778, 3)), "extra": _LeavesAMark(mark)}, protocol=2))
    with pytest.raises(ManoFormatError, match=rf"{path}: .*refusing to load class {__name__}\.leave_mark from a MANO"):
        load_mano_arrays(path)
    assert not mark.exists()
    # the two callers keep different lists: tensors are no part of a MANO file
    assert ("torch._utils", "_rebuild_tensor_v2") not in MANO_ALLOW_LIST.allowed


def test_torchs_legacy_format_reads_its_header_through_the_restricted_load_too(tmp_path: Path) -> None:
    """torch.load reads a non-zip file's header records with `pickle_module.load`, not its Unpickler: a
    payload in the first record is refused as well (read_checkpoint_safely refuses non-zip files earlier)."""
    mark = tmp_path / "mark.txt"
    path = tmp_path / "legacy.pt"
    path.write_bytes(pickle.dumps(_LeavesAMark(mark), protocol=2))
    module = restricted_pickle.pickle_module(CHECKPOINT_ALLOW_LIST)
    with pytest.raises(RefusedGlobal, match=rf"refusing to load {__name__}\.leave_mark"):
        torch.load(path, map_location="cpu", weights_only=False, pickle_module=module)
    assert not mark.exists()
