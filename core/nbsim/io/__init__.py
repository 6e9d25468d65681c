"""Readers and writers for the file formats nanoBragg uses (see ``specs/files.md``)."""
