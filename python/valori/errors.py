"""The exception hierarchy of valori. Every error is a :class:`valori.Error`; the ``code``
attribute is the name of its row in the one error table (Rust's ``valori_kernel::ErrorCode``),
shared with the C API (``VALORI_<CODE>``) and HTTP.

The native module raises by code name through :func:`error_class`, and importing this module
checks that every code of the native table has a class here (a new code without one makes
``import valori`` fail with an :class:`ImportError` naming it)."""

from __future__ import annotations

from typing import Dict, Iterable, Tuple, Type

from . import _native


class Error(Exception):
    """Base class of every valori error."""

    code = "Error"


class InternalError(Error):
    """A bug in valori (it never panics on input; please report this)."""

    code = "Internal"


class MisuseError(Error):
    """The API was used against its contract (for example, a closed database)."""

    code = "Misuse"


class InvalidInputError(Error, ValueError):
    """A value was refused (NaN, infinity, out of Q16.16 range, k = 0, a wrong dtype,
    oversize metadata). Nothing changed."""

    code = "InvalidInput"


class DimensionError(Error, ValueError):
    """A vector's length differs from the store's dimension. Nothing changed."""

    code = "Dimension"


class FullError(Error):
    """A capacity (max_records, max_nodes, max_edges, id space) is exhausted. Nothing changed."""

    code = "Full"


class NotFoundError(Error, LookupError):
    """The record, node or edge does not exist. Nothing changed."""

    code = "NotFound"


class ExistsError(Error):
    """A caller-chosen id is already in use. Nothing changed."""

    code = "Exists"


class InsufficientSizeError(Error):
    """An output buffer is too small (a C API code: Python allocates its outputs, so valori
    does not raise it from Python)."""

    code = "InsufficientSize"


class CorruptError(Error):
    """Stored or received bytes are damaged; the message names the file and offset."""

    code = "Corrupt"


class BusyError(Error):
    """Another handle or process has the database open."""

    code = "Busy"


class ValoriIOError(Error, OSError):
    """An operating-system I/O error."""

    code = "Io"


class PoisonedError(Error):
    """An earlier write or fsync failed; close and reopen the database."""

    code = "Poisoned"


def _by_code() -> Dict[str, Type[Error]]:
    """The classes of this module by ``code`` (each code once)."""
    found: Dict[str, Type[Error]] = {}
    for value in list(globals().values()):
        if isinstance(value, type) and issubclass(value, Error) and value is not Error:
            if value.code in found:
                raise ImportError(f"valori.errors: {found[value.code].__name__} and {value.__name__} "
                                  f"both have code {value.code!r}")
            found[value.code] = value
    return found


_BY_CODE = _by_code()


def error_class(code: str) -> Type[Error]:
    """The exception class of an error code name of the native table (``"InvalidInput"`` ->
    :class:`InvalidInputError`). The native module raises every error through this."""
    try:
        return _BY_CODE[code]
    except KeyError:
        raise LookupError(f"valori.errors has no exception class for error code {code!r}") from None


def check_table(table: Iterable[Tuple[int, str, str]]) -> None:
    """Raises :class:`ImportError` naming each code of ``table`` (rows ``(value, name,
    description)`` as ``valori._native.error_codes()`` returns them) that has no class here."""
    missing = [f"{name} ({value}: {description})" for value, name, description in table
               if name not in _BY_CODE]
    if missing:
        raise ImportError("valori.errors has no exception class for error code(s) " + ", ".join(missing)
                          + ": add a valori.Error subclass whose `code` is the name")


check_table(_native.error_codes())

__all__ = [
    "Error", "InternalError", "MisuseError", "InvalidInputError", "DimensionError", "FullError",
    "NotFoundError", "ExistsError", "InsufficientSizeError", "CorruptError", "BusyError",
    "ValoriIOError", "PoisonedError", "error_class", "check_table",
]
