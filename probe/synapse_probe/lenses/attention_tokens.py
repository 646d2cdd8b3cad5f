"""Token strings for the sampled sequence, made on the encoder thread.

``tokenizer`` is a Hugging Face tokenizer, a callable taking a list of ids and returning one
string per id, or None (the ids in decimal). A Hugging Face tokenizer decodes each id on its own
(``decode([id])``: " quick", not byte-level BPE's "Ġquick" or SentencePiece's "▁quick"), or
names it with ``convert_ids_to_tokens`` when it cannot decode. Each string is cut
to ``MAX_TOKEN_BYTES`` of UTF-8 at a character boundary. A tokenizer that fails or returns the
wrong number of strings falls back to decimal ids (logged once).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from synapse_native.protocol import MAX_TOKEN_BYTES

log = logging.getLogger(__name__)


class TokenNamer:
    """Turns token ids into the strings an ATTENTION frame carries."""

    def __init__(self, tokenizer: Any = None) -> None:
        if tokenizer is not None and not (
            callable(getattr(tokenizer, "convert_ids_to_tokens", None)) or callable(tokenizer)
        ):
            raise TypeError(
                "tokenizer must have convert_ids_to_tokens or be a callable(list[int]) -> "
                f"list[str], got {type(tokenizer).__name__}"
            )
        self.tokenizer = tokenizer
        self._warned = False

    def names(self, ids: Sequence[int]) -> tuple[str, ...]:
        """One string per id, each at most ``MAX_TOKEN_BYTES`` of UTF-8."""
        return tuple(fit_token(name) for name in self._raw(list(ids)))

    def _raw(self, ids: list[int]) -> list[str]:
        tokenizer = self.tokenizer
        if tokenizer is None:
            return [str(i) for i in ids]
        try:
            decode = getattr(tokenizer, "decode", None)
            convert = getattr(tokenizer, "convert_ids_to_tokens", None)
            if callable(decode) and callable(convert):
                names = [decode([i]) for i in ids]
            else:
                names = list(convert(ids) if callable(convert) else tokenizer(ids))
            if len(names) != len(ids):
                raise ValueError(f"{len(names)} strings for {len(ids)} token ids")
            return ["" if name is None else str(name) for name in names]
        except Exception:
            if not self._warned:
                self._warned = True
                log.warning("synapse: the tokenizer failed; token ids are shown", exc_info=True)
            return [str(i) for i in ids]


def fit_token(name: str) -> str:
    """``name`` cut to at most ``MAX_TOKEN_BYTES`` bytes of UTF-8, never inside a character."""
    data = name.encode("utf-8", errors="replace")
    if len(data) <= MAX_TOKEN_BYTES:
        return data.decode("utf-8")
    return data[:MAX_TOKEN_BYTES].decode("utf-8", errors="ignore")
