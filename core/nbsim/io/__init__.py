"""Readers and writers for the file formats nanoBragg uses (see ``specs/outputs.md``)."""

from __future__ import annotations

from nbsim.errors import InputError


def read_bytes(path: str, flag: str) -> bytes:
    """The whole file; a missing or unreadable file is an input error naming ``flag``."""
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise InputError(f"{flag}: cannot read {path}: {exc.strerror or exc}") from None


def read_text(path: str, flag: str) -> str:
    """The file as text (Latin-1, any line ending), errors as :func:`read_bytes`."""
    return read_bytes(path, flag).decode("latin-1")
