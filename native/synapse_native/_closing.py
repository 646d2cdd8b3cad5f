"""``with`` support shared by the native handles (ring, pumps, client)."""

from __future__ import annotations

from types import TracebackType
from typing import TypeVar

_Handle = TypeVar("_Handle", bound="ClosesOnExit")


class ClosesOnExit:
    """A resource with an idempotent ``close()``, closed when a ``with`` block ends."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: _Handle) -> _Handle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
