"""Exceptions of the native core, and the one place that turns C error codes into them.

Every exception raised by ``ring``, ``sender`` and ``receiver`` derives from ``NativeError``;
where a built-in category fits, the exception also derives from it (``ValueError``,
``OSError``...) so that callers may catch either. "Full" and "empty" are not errors: the
wrappers report them as ``False`` / ``None``.
"""

from __future__ import annotations

import os
from typing import NoReturn

from ._lib import ffi, lib


class NativeError(Exception):
    """Base class of every error reported by synapse_native's C core."""


class InvalidArgumentError(NativeError, ValueError):
    """An argument is out of range (a capacity that is not a power of two, a bad socket...)."""


class RecordTooLargeError(NativeError, ValueError):
    """A record or frame is longer than the ring or pump can ever carry."""


class ClosedError(NativeError):
    """The ring or pump was closed."""


class UnknownClientError(NativeError, KeyError):
    """No client has that id."""


class NativeMemoryError(NativeError, MemoryError):
    """The C core could not allocate memory."""


class NativeOSError(NativeError, OSError):
    """A system call of the C core failed."""


def raise_for(code: int, action: str) -> NoReturn:
    """Raises the exception for the negative C return ``code`` of an attempt to ``action``.

    Must be called right after the failing C call: for ``SYN_ESYS`` it reads the ``errno`` that
    cffi saved from that call.
    """
    if code == lib.SYN_ESYS:
        err = ffi.errno
        raise NativeOSError(err, f"cannot {action}: {os.strerror(err)}")
    exception: type[NativeError] = _BY_CODE.get(code, NativeError)
    raise exception(f"cannot {action}: {_TEXT.get(code, f'error {code}')}")


_BY_CODE: dict[int, type[NativeError]] = {
    lib.SYN_EINVAL: InvalidArgumentError,
    lib.SYN_ETOOBIG: RecordTooLargeError,
    lib.SYN_ECLOSED: ClosedError,
    lib.SYN_ENOCLIENT: UnknownClientError,
    lib.SYN_ENOMEM: NativeMemoryError,
}

_TEXT: dict[int, str] = {
    lib.SYN_EFULL: "no room",
    lib.SYN_EEMPTY: "nothing to read",
    lib.SYN_ETOOBIG: "too large",
    lib.SYN_ETOOSMALL: "buffer too small",
    lib.SYN_EINVAL: "invalid argument",
    lib.SYN_ENOMEM: "out of memory",
    lib.SYN_ECLOSED: "closed",
    lib.SYN_ENOCLIENT: "no such client",
}
