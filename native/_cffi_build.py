"""cffi build script of the two C extensions (API mode, out of line).

- ``synapse_native._native``: the record ring, the socket pumps and the app's grid kernels;
- ``synapse_native._stats``: the fused statistics kernel for CPU tensors.

setuptools runs ``native_builder`` and ``stats_builder`` through ``cffi_modules`` in setup.py;
``python native/_cffi_build.py`` compiles both in place (``native/synapse_native/*.so``) for a
quick rebuild during development.

The declaration-only headers under ``native/include`` are the single source of each cdef: this
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
from typing import NamedTuple

from cffi import FFI

NATIVE = Path(__file__).resolve().parent
ROOT = NATIVE.parent
COMMON_FLAGS = ["-O2", "-Wall", "-Wextra", "-std=c11", "-pthread"]

_INTEGER_DEFINE = re.compile(r"^\s*#\s*define\s+\w+\s+-?(0x[0-9A-Fa-f]+|\d+)\b")


class Extension(NamedTuple):
    """One extension module: its declaration headers (in cdef order), C sources and flags.

    A NamedTuple rather than a dataclass: cffi runs this script outside ``sys.modules``, where
    dataclasses cannot resolve their own module."""

    name: str
    headers: tuple[str, ...]
    sources: tuple[str, ...]
    extra_flags: tuple[str, ...] = ()


NATIVE_CORE = Extension(
    "synapse_native._native",
    headers=("errors.h", "ring.h", "frame.h", "pumps.h", "bench.h", "grid.h"),
    sources=(
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
    ),
    extra_flags=("-D_GNU_SOURCE",),
)
STATS_KERNEL = Extension(
    "synapse_native._stats",
    headers=("stats.h",),
    sources=(
        "stats.c",
        "stats_dispatch.c",
        "stats_kernel_base.c",
        "stats_kernel_avx2.c",
        "stats_fold.c",
        "stats_pool.c",
        "stats_finish.c",
        "stats_select.c",
    ),
    # Lets the compiler fuse the moment updates into FMAs where the target has them (more
    # accurate, and not fast-math: NaN / Inf semantics are untouched).
    extra_flags=("-ffp-contract=fast",),
)


def cdef_from_header(text: str) -> str:
    """Keeps what cdef understands: declarations and ``#define NAME <integer>`` lines."""
    kept = []
    for line in text.splitlines():
        if line.lstrip().startswith("#") and not _INTEGER_DEFINE.match(line):
            continue
        kept.append(line)
    return "\n".join(kept)


def make_builder(extension: Extension, absolute_paths: bool = False) -> FFI:
    """The builder; setuptools wants source paths relative to setup.py's folder (the working
    directory of a pip build), while ``FFI.compile`` builds in a scratch folder and needs them
    absolute."""

    def path(p: Path) -> str:
        return str(p) if absolute_paths else p.relative_to(ROOT).as_posix()

    include = NATIVE / "include"
    builder = FFI()
    builder.cdef("\n".join(cdef_from_header((include / h).read_text()) for h in extension.headers))
    builder.set_source(
        extension.name,
        "\n".join(f'#include "{h}"' for h in extension.headers),
        sources=[path(NATIVE / "src" / name) for name in extension.sources],
        include_dirs=[path(include), path(NATIVE / "src")],
        extra_compile_args=COMMON_FLAGS + list(extension.extra_flags),
        extra_link_args=["-pthread"],
        libraries=["pthread"],
    )
    return builder


native_builder = make_builder(NATIVE_CORE)
stats_builder = make_builder(STATS_KERNEL)


def build_in_place(extension: Extension) -> Path:
    """Compiles into a scratch folder and puts the extension into the package folder, under the
    name an editable ``pip install`` gives it, so that the two never shadow each other. The file
    is replaced (not overwritten), so a running process that has the old one loaded keeps it."""
    with tempfile.TemporaryDirectory(prefix="synapse-cffi-") as scratch:
        built = Path(make_builder(extension, absolute_paths=True).compile(tmpdir=scratch))
        package = NATIVE / "synapse_native"
        stem = extension.name.rpartition(".")[2]
        # cffi's generated code uses the stable ABI, and setuptools names it accordingly.
        stable = ".abi3.so" in importlib.machinery.EXTENSION_SUFFIXES
        target = package / (f"{stem}.abi3.so" if stable else built.name)
        for old in package.glob(f"{stem}.*.so"):
            if old != target:
                old.unlink()
        staged = target.with_suffix(".new")
        shutil.copy2(built, staged)
        staged.replace(target)
    return target


if __name__ == "__main__":
    for ext in (NATIVE_CORE, STATS_KERNEL):
        print(build_in_place(ext), file=sys.stderr)
