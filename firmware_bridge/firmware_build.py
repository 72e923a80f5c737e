"""Build the C reference firmware's host programs with the system C compiler (warnings are errors)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from firmware_bridge.errors import UserError

FIRMWARE_DIR = Path(__file__).resolve().parent / "firmware"
CORE_SOURCES = ("protocol.c", "cobs.c", "crc16.c")
PROGRAMS = {
    "hand_sim": ("host/host_main.c", *CORE_SOURCES, "controller.c"),
    "codec": ("host/codec_main.c", *CORE_SOURCES),
    # every public controller entry point called with out-of-range arguments (tests/firmware_bridge)
    "controller_probe": ("host/controller_probe.c", *CORE_SOURCES, "controller.c"),
}
STRICT_FLAGS = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2")
# The Arduino sketch, built for this machine against a stub Arduino core and driven by host/sketch_main.cpp
SKETCH_SOURCES = ("hand_firmware.ino", "host/sketch_main.cpp")
SKETCH_CORE = (*CORE_SOURCES, "controller.c")
ARDUINO_STUB_DIR = FIRMWARE_DIR / "host" / "arduino_stub"
SKETCH_FLAGS = ("-std=c++11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2")
SANITIZER_FLAGS = ("-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-g")


class FirmwareBuildError(RuntimeError):
    """The firmware did not compile: our bug (the sources must build with warnings as errors)."""


class NoCompilerError(FirmwareBuildError, UserError):
    """No C/C++ compiler on this machine: the user can install one (one line at the CLI, exit 2)."""


def compiler() -> str:
    chosen = os.environ.get("CC")
    if chosen and shutil.which(chosen) is None:
        raise NoCompilerError(f"CC={chosen} is not a compiler on this machine (unset CC to use cc/gcc/clang)")
    found = chosen or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not found:
        raise NoCompilerError("no C compiler found (install gcc or clang, or set CC) — needed for the emulated hand")
    return found


def _cache_dir() -> Path:
    base = os.environ.get("MODE2_BUILD_DIR")
    return Path(base) if base else Path.home() / ".cache" / "mode2" / "firmware"


def _cached_binary(name: str, flags: tuple[str, ...], inputs: list[Path], out_dir: Path | None) -> Path:
    """Where the binary built from `inputs` with `flags` lives: its name carries a digest of both."""
    digest = hashlib.sha256(" ".join(flags).encode())
    for path in inputs:
        digest.update(path.read_bytes())
    out_dir = out_dir or _cache_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir / f"{name}_{digest.hexdigest()[:12]}"


def _compile(command: list[str], what: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise FirmwareBuildError(f"building {what} failed:\n{' '.join(command)}\n{result.stderr}")


def _link_atomically(binary: Path, command: list[str], what: str) -> Path:
    """Run `command` (which ends in `-o`) into a temporary name, then rename: a process starting the binary
    meanwhile (another test, a `mode2 hand-sim`) never sees it half-written."""
    with tempfile.TemporaryDirectory(dir=binary.parent) as work:
        partial = Path(work) / binary.name
        _compile([*command, str(partial)], what)
        os.replace(partial, binary)
    return binary


def build(program: str, *, sanitize: bool = False, out_dir: Path | None = None) -> Path:
    """Compile `program` (a key of PROGRAMS); rebuilt only when a source or flag changed."""
    if program not in PROGRAMS:
        raise FirmwareBuildError(f"unknown firmware program {program!r}; choose from {sorted(PROGRAMS)}")
    flags = STRICT_FLAGS + (SANITIZER_FLAGS if sanitize else ())
    sources = [FIRMWARE_DIR / s for s in PROGRAMS[program]]
    headers = sorted(FIRMWARE_DIR.glob("*.h"))
    binary = _cached_binary(f"{program}{'_asan' if sanitize else ''}", flags, [*sources, *headers], out_dir)
    if binary.exists():
        return binary
    return _link_atomically(binary, [compiler(), *flags, *map(str, sources), "-o"], program)


def cxx_compiler() -> str | None:
    """The C++ compiler for the sketch's host build (Arduino sketches are C++), or None."""
    chosen = os.environ.get("CXX")
    if chosen:
        return chosen if shutil.which(chosen) else None
    return shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")


def build_sketch(*, out_dir: Path | None = None) -> Path:
    """`hand_firmware.ino` compiled for this machine: the C core with `cc -std=c99` (warnings are errors),
    the sketch and its driver with `c++`, against the stub Arduino core in host/arduino_stub/."""
    cxx = cxx_compiler()
    if cxx is None:
        raise NoCompilerError("no C++ compiler found (install g++ or clang++, or set CXX) — needed for the sketch")
    core = [FIRMWARE_DIR / s for s in SKETCH_CORE]
    sketch = [FIRMWARE_DIR / s for s in SKETCH_SOURCES]
    headers = sorted(FIRMWARE_DIR.glob("*.h")) + sorted(ARDUINO_STUB_DIR.glob("*.h"))
    binary = _cached_binary("sketch", STRICT_FLAGS + SKETCH_FLAGS, [*core, *sketch, *headers], out_dir)
    if binary.exists():
        return binary
    with tempfile.TemporaryDirectory(dir=binary.parent) as work:
        objects = []
        for source in core:
            obj = Path(work) / (source.name + ".o")
            _compile([compiler(), *STRICT_FLAGS, "-c", str(source), "-o", str(obj)], "the sketch's C core")
            objects.append(str(obj))
        include = ["-I", str(ARDUINO_STUB_DIR), "-I", str(FIRMWARE_DIR), "-include", "Arduino.h"]
        command = [cxx, *SKETCH_FLAGS, *include, "-x", "c++", str(sketch[0]), "-x", "none", str(sketch[1])]
        return _link_atomically(binary, [*command, *objects, "-o"], "hand_firmware.ino")


def sanitizers_available() -> bool:
    """True when this compiler can build and run an ASan/UBSan binary here."""
    try:
        build("codec", sanitize=True)
    except (FirmwareBuildError, OSError):
        return False
    return True
