"""Build the C reference firmware's host programs with the system C compiler (warnings are errors)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

FIRMWARE_DIR = Path(__file__).resolve().parent / "firmware"
CORE_SOURCES = ("protocol.c", "cobs.c", "crc16.c")
PROGRAMS = {
    "hand_sim": ("host/host_main.c", *CORE_SOURCES, "controller.c"),
    "codec": ("host/codec_main.c", *CORE_SOURCES),
}
STRICT_FLAGS = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2")
SANITIZER_FLAGS = ("-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-g")


class FirmwareBuildError(RuntimeError):
    pass


def compiler() -> str:
    found = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not found:
        raise FirmwareBuildError("no C compiler found (install gcc or clang, or set CC) — needed for the emulated hand")
    return found


def _cache_dir() -> Path:
    base = os.environ.get("MODE2_BUILD_DIR")
    return Path(base) if base else Path.home() / ".cache" / "mode2" / "firmware"


def build(program: str, *, sanitize: bool = False, out_dir: Path | None = None) -> Path:
    """Compile `program` ("hand_sim" or "codec"); rebuilt only when a source or flag changed."""
    if program not in PROGRAMS:
        raise FirmwareBuildError(f"unknown firmware program {program!r}; choose from {sorted(PROGRAMS)}")
    flags = STRICT_FLAGS + (SANITIZER_FLAGS if sanitize else ())
    sources = [FIRMWARE_DIR / s for s in PROGRAMS[program]]
    headers = sorted(FIRMWARE_DIR.glob("*.h"))
    digest = hashlib.sha256(" ".join(flags).encode())
    for path in [*sources, *headers]:
        digest.update(path.read_bytes())
    out_dir = out_dir or _cache_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    binary = out_dir / f"{program}{'_asan' if sanitize else ''}_{digest.hexdigest()[:12]}"
    if binary.exists():
        return binary
    command = [compiler(), *flags, "-o", str(binary), *map(str, sources)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise FirmwareBuildError(f"building {program} failed:\n{' '.join(command)}\n{result.stderr}")
    return binary


def sanitizers_available() -> bool:
    """True when this compiler can build and run an ASan/UBSan binary here."""
    try:
        build("codec", sanitize=True)
    except (FirmwareBuildError, OSError):
        return False
    return True
