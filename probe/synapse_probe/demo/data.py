"""Training text: the Python standard library's own source files, as bytes. Nothing is
downloaded; the same interpreter gives the same corpus, in the same order."""

from __future__ import annotations

import os
import sysconfig
from pathlib import Path

import torch

DEFAULT_MAX_BYTES = 4 << 20
_SKIP_DIRS = {"site-packages", "dist-packages", "__pycache__"}


def stdlib_dir() -> Path:
    """Where this interpreter's standard library lives."""
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_files(root: Path | None = None) -> list[Path]:
    """The ``*.py`` files under ``root`` (default: the standard library), sorted by relative
    path; installed packages and caches are left out."""
    base = stdlib_dir() if root is None else root
    found: list[str] = []
    for folder, dirs, files in os.walk(base):
        dirs[:] = [name for name in dirs if name not in _SKIP_DIRS]  # not walked at all
        relative = os.path.relpath(folder, base)
        found += [os.path.join(relative, name) for name in files if name.endswith(".py")]
    return [base / name for name in sorted(Path(name).as_posix() for name in found)]


def load_corpus(max_bytes: int = DEFAULT_MAX_BYTES, root: Path | None = None) -> torch.Tensor:
    """The first ``max_bytes`` bytes of the files concatenated: a uint8 tensor."""
    chunks: list[bytes] = []
    total = 0
    for path in stdlib_files(root):
        try:
            data = path.read_bytes()
        except OSError:
            continue
        chunks.append(data[: max_bytes - total])
        total += len(chunks[-1])
        if total >= max_bytes:
            break
    if total == 0:
        raise RuntimeError(f"no Python source found under {root or stdlib_dir()}")
    return torch.frombuffer(bytearray(b"".join(chunks)), dtype=torch.uint8)


def split(corpus: torch.Tensor, held_out: float = 0.05) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, held-out): the last ``held_out`` fraction is kept apart."""
    cut = int(len(corpus) * (1.0 - held_out))
    return corpus[:cut], corpus[cut:]


class Windows:
    """Random (input, target) windows of ``seq_len`` bytes, drawn with a seeded generator.

    The corpus lives on ``device``, so drawing a batch copies nothing from the host.
    """

    def __init__(
        self,
        corpus: torch.Tensor,
        batch: int,
        seq_len: int,
        *,
        seed: int = 0,
        device: torch.device | str = "cpu",
    ) -> None:
        if len(corpus) <= seq_len + 1:
            raise ValueError(f"a corpus of {len(corpus)} bytes is too short for {seq_len}")
        self.device = torch.device(device)
        self.data = corpus.to(self.device)
        self.batch, self.seq_len = batch, seq_len
        self.generator = torch.Generator(self.device)
        self.generator.manual_seed(seed)
        self._offsets = torch.arange(seq_len + 1, device=self.device)

    def sample(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One batch: inputs and next-byte targets, int64, shape (batch, seq_len)."""
        high = len(self.data) - self.seq_len - 1
        starts = torch.randint(
            0, high, (self.batch, 1), generator=self.generator, device=self.device
        )
        window = self.data[starts + self._offsets].long()
        return window[:, :-1], window[:, 1:]
