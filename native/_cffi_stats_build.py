"""cffi build script of ``synapse_native._stats`` (API mode, out of line).

Listed in setup.py's ``cffi_modules``; run directly (``python native/_cffi_stats_build.py``) it
compiles the extension in place, into ``native/synapse_native/``, for a quick rebuild during
development.
"""

from __future__ import annotations

import importlib.machinery
import re
import shutil
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
HEADER = HERE / "include" / "stats.h"
SOURCES = [
    "stats.c",
    "stats_dispatch.c",
    "stats_kernel_base.c",
    "stats_kernel_avx2.c",
    "stats_fold.c",
    "stats_pool.c",
    "stats_finish.c",
    "stats_select.c",
]
# -ffp-contract=fast lets the compiler fuse the moment updates into FMAs where the target has them
# (more accurate, and not fast-math: NaN / Inf semantics are untouched). -pthread: worker pool.
CFLAGS = ["-O2", "-Wall", "-Wextra", "-std=c11", "-ffp-contract=fast", "-pthread"]

# Integer constants are the only preprocessor lines ffi.cdef understands.
_DEFINE_INT = re.compile(r"^#define\s+\w+\s+-?\d+\b")


def cdef_text(header: Path) -> str:
    """The header without its guard and includes, ready for ``ffi.cdef``."""
    kept = []
    for line in header.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("#") and not _DEFINE_INT.match(stripped):
            continue
        kept.append(line)
    return "\n".join(kept)


def make_builder(native_dir: str) -> FFI:
    """The builder, with paths under ``native_dir`` (relative for setup.py, absolute in place)."""
    builder = FFI()
    builder.cdef(cdef_text(HEADER))
    builder.set_source(
        "synapse_native._stats",
        '#include "stats.h"',
        sources=[f"{native_dir}/src/{name}" for name in SOURCES],
        include_dirs=[f"{native_dir}/include"],
        extra_compile_args=CFLAGS,
        extra_link_args=["-pthread"],
    )
    return builder


ffibuilder = make_builder("native")

if __name__ == "__main__":
    built = Path(make_builder(str(HERE)).compile(tmpdir=str(HERE.parent / "build" / "cffi_stats")))
    # Same name as an editable install gives it; replaced, not overwritten, so that a running
    # process that has the old file loaded keeps working.
    stable = ".abi3.so" in importlib.machinery.EXTENSION_SUFFIXES
    target = HERE / "synapse_native" / ("_stats.abi3.so" if stable else built.name)
    staged = target.with_suffix(".new")
    shutil.copy2(built, staged)
    staged.replace(target)
    print(target)
