"""Unpickling untrusted files without executing them: one restricted unpickler, each caller its allow-list.

A pickle names the globals (classes, functions) it needs to rebuild its objects, and plain `pickle.load`
imports and calls whatever is named — a file can run any code. `RestrictedUnpickler` resolves only the
globals its `AllowList` names; a caller may also map whole families of classes to *inert stand-ins* (objects
that keep their pickled state and run nothing). Everything else is refused with `RefusedGlobal`, whose
message names the global. Python-2 names (`__builtin__`, `copy_reg`) are translated first, as pickle
itself does, so an allow-list is written with Python-3 names only.

Callers: checkpoints (training/models/checkpoint_io.py, also as torch.load's `pickle_module`) and MANO
files (training/hand/mano_loader.py).
"""

from __future__ import annotations

import _compat_pickle
import pickle
import types
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import IO, Any


class RefusedGlobal(pickle.UnpicklingError):
    """The file names a global outside the allow-list; nothing of it was imported or called."""


@dataclass(frozen=True)
class AllowList:
    """What a pickle may name. `allowed`: (module, name) pairs resolved as themselves; `allowed_if`: a rule for
    families too large to list (torch's *Storage classes); `stand_in`: returns an inert class for a global that
    is kept as data, or None; `refusal`: the error message, formatted with {module} and {name}."""

    allowed: frozenset[tuple[str, str]]
    allowed_if: Callable[[str, str], bool] | None = None
    stand_in: Callable[[str, str], type | None] | None = None
    refusal: str = "refusing to load {module}.{name} (not on the allow-list)"

    @classmethod
    def of(cls, pairs: Iterable[tuple[str, str]], **kwargs: Any) -> AllowList:
        return cls(frozenset(pairs), **kwargs)


def python3_name(module: str, name: str) -> tuple[str, str]:
    """Protocol-2 pickles name Python-2 modules (`__builtin__.set`, `copy_reg._reconstructor`): translate them."""
    module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


class RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: IO[bytes], *, allow: AllowList, **kwargs: Any) -> None:
        super().__init__(file, **kwargs)
        self.allow = allow

    def find_class(self, module: str, name: str) -> Any:
        module, name = python3_name(module, name)
        if (module, name) in self.allow.allowed or (self.allow.allowed_if and self.allow.allowed_if(module, name)):
            return super().find_class(module, name)
        stand_in = self.allow.stand_in(module, name) if self.allow.stand_in else None
        if stand_in is not None:
            return stand_in
        raise RefusedGlobal(self.allow.refusal.format(module=module, name=name))


def load(file: IO[bytes], allow: AllowList, **kwargs: Any) -> Any:
    """`pickle.load` restricted to `allow` (kwargs: encoding, errors, fix_imports)."""
    return RestrictedUnpickler(file, allow=allow, **kwargs).load()


def pickle_module(allow: AllowList) -> types.SimpleNamespace:
    """A stand-in for the `pickle` module for `torch.load(pickle_module=…)`: its Unpickler and its load are
    both restricted (torch's legacy, non-zip format reads its header records with `pickle_module.load`)."""

    class Unpickler(RestrictedUnpickler):
        def __init__(self, file: IO[bytes], **kwargs: Any) -> None:
            super().__init__(file, allow=allow, **kwargs)

    def restricted_load(file: IO[bytes], **kwargs: Any) -> Any:
        return Unpickler(file, **kwargs).load()

    return types.SimpleNamespace(Unpickler=Unpickler, load=restricted_load, __name__="restricted_pickle")


class InertRecord:
    """Base of the inert stand-ins callers map classes to: keeps the pickled arguments and state, runs nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state
