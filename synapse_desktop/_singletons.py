"""Keep ``None``, ``True`` and ``False`` alive under PySide6 wheels that under-count them.

Observed with PySide6 6.12.0 (a stable-ABI wheel) on Python 3.11: every call of a void Qt
method (``QTimer.stop``, ``QApplication.processEvents``, ...) and every slot a Qt signal calls
takes one reference away from ``None`` (and some ``bool`` results from ``True``): the app
loses about 13 references to ``None`` a second, and once the count reaches zero the interpreter
aborts ("Fatal Python error: none_dealloc"), at exit of the GUI benchmark or in the app after
tens of minutes. A likely cause: a wheel built with CPython headers whose limited-API
``Py_RETURN_NONE`` treated ``None`` as immortal for every target (CPython gh-134989). From
Python 3.12 on the three objects are immortal (PEP 683) and nothing happens.

``pin`` does what 3.12 does: it gives the three objects a count that no such leak can use up.
"""

from __future__ import annotations

import ctypes
import sys

_PINNED = 1 << 40  # at a thousand lost references a second, enough for 35 years


def pin() -> bool:
    """Make ``None``, ``True`` and ``False`` immortal in effect (Python < 3.12, CPython only);
    returns whether it did. Safe to call more than once."""
    if sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return False
    done = False
    for obj in (None, True, False):
        count = ctypes.c_ssize_t.from_address(id(obj))  # ob_refcnt leads a PyObject
        if count.value != sys.getrefcount(obj) - 1:  # not the layout we expect: leave it
            return done
        if count.value < _PINNED:
            count.value += _PINNED
        done = True
    return done
