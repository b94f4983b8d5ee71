"""The exception hierarchy of valori. Every error is a :class:`valori.Error`; the ``code``
attribute is the name shared with the C API (``VALORI_<CODE>``), Rust and HTTP."""

from __future__ import annotations


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


__all__ = [
    "Error", "InternalError", "MisuseError", "InvalidInputError", "DimensionError", "FullError",
    "NotFoundError", "ExistsError", "CorruptError", "BusyError", "ValoriIOError", "PoisonedError",
]
