"""cffi build script of ``synapse_native._native``: the record ring and the socket pumps.

API mode, out of line: setuptools runs ``ffibuilder`` through ``cffi_modules`` in setup.py, and
``python native/_cffi_build.py`` compiles the module in place
(``native/synapse_native/_native.*.so``) for a quick rebuild during development.

The declaration-only headers under ``native/include`` are the single source of the cdef: this
script keeps their declarations and integer ``#define`` constants and drops the rest of the
preprocessor lines (include guards, ``#include``) that cdef does not accept.
"""

from __future__ import annotations

import importlib.machinery
import re
import shutil
import sys
import tempfile
from pathlib import Path

from cffi import FFI

NATIVE = Path(__file__).resolve().parent
ROOT = NATIVE.parent
HEADERS = ["ring.h", "frame.h", "pumps.h", "bench.h", "grid.h"]
SOURCES = [
    "ring.c",
    "wake.c",
    "thread.c",
    "sockio.c",
    "frame_check.c",
    "client.c",
    "sender.c",
    "sender_loop.c",
    "receiver.c",
    "receiver_loop.c",
    "bench_ring.c",
    "bench_pumps.c",
    "grid.c",
]
COMPILE_ARGS = ["-O2", "-Wall", "-Wextra", "-std=c11", "-D_GNU_SOURCE", "-pthread"]

_INTEGER_DEFINE = re.compile(r"^\s*#\s*define\s+\w+\s+-?(0x[0-9A-Fa-f]+|\d+)\b")


def cdef_from_header(text: str) -> str:
    """Keeps what cdef understands: declarations and ``#define NAME <integer>`` lines."""
    kept = []
    for line in text.splitlines():
        if line.lstrip().startswith("#") and not _INTEGER_DEFINE.match(line):
            continue
        kept.append(line)
    return "\n".join(kept)


def make_builder(absolute_paths: bool = False) -> FFI:
    """The builder; setuptools wants source paths relative to setup.py's folder (the working
    directory of a pip build), while ``FFI.compile`` builds in a scratch folder and needs them
    absolute."""

    def path(p: Path) -> str:
        return str(p) if absolute_paths else p.relative_to(ROOT).as_posix()

    builder = FFI()
    builder.cdef("\n".join(cdef_from_header((NATIVE / "include" / h).read_text()) for h in HEADERS))
    builder.set_source(
        "synapse_native._native",
        "\n".join(f'#include "{h}"' for h in HEADERS),
        sources=[path(NATIVE / "src" / name) for name in SOURCES],
        include_dirs=[path(NATIVE / "include"), path(NATIVE / "src")],
        extra_compile_args=COMPILE_ARGS,
        extra_link_args=["-pthread"],
        libraries=["pthread"],
    )
    return builder


ffibuilder = make_builder()


def build_in_place() -> Path:
    """Compiles into a scratch folder and puts the extension into the package folder, under the
    name an editable ``pip install`` gives it, so that the two never shadow each other. The file
    is replaced (not overwritten), so a running process that has the old one loaded keeps it."""
    with tempfile.TemporaryDirectory(prefix="synapse-cffi-") as scratch:
        built = Path(make_builder(absolute_paths=True).compile(tmpdir=scratch, verbose=True))
        package = NATIVE / "synapse_native"
        # cffi's generated code uses the stable ABI, and setuptools names it accordingly.
        stable = ".abi3.so" in importlib.machinery.EXTENSION_SUFFIXES
        target = package / ("_native.abi3.so" if stable else built.name)
        for old in package.glob("_native.*.so"):
            if old != target:
                old.unlink()
        staged = target.with_suffix(".new")
        shutil.copy2(built, staged)
        staged.replace(target)
    return target


if __name__ == "__main__":
    print(build_in_place(), file=sys.stderr)
