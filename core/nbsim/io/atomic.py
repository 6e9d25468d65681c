"""Write a run's files all together or not at all.

A run's outputs are staged in unnamed temporary files (Linux ``O_TMPFILE``) in the directory of
each target, so a crash, a full disk or SIGKILL leaves nothing behind, not even a hidden file;
only when every file is complete are they linked into place.  A target that already exists is
replaced by a rename, so a reader sees the old file or the new one, never a half-written one.
Where the platform has no unnamed files, a hidden ``.NAME.XXXX.part`` beside the target plays
their part (it is removed on every failure Python sees).

Files get the mode the umask gives (0644 under umask 022), as ``fopen`` gives the reference
program's files; a target that is a symbolic link is written through, as ``fopen`` does.
Every file-system failure is an :class:`~nbsim.errors.OutputError` naming the flag and file.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import tempfile
from collections.abc import Sequence

import attrs

from nbsim.errors import OutputError

#: unnamed files need O_TMPFILE (Linux); how they get a name at the end: _name_unnamed
_O_TMPFILE = getattr(os, "O_TMPFILE", 0)
#: errors by which a file system says it has no unnamed files (old kernels ignore the flag: EISDIR)
_NO_TMPFILE = {errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL}


@attrs.frozen
class Output:
    """One file of a run: where it goes, its bytes, and the option that named it (for errors)."""

    path: str
    data: bytes
    flag: str


def _target(path: str) -> str:
    """The file a write to ``path`` lands in: through symbolic links, as ``fopen`` goes."""
    return os.path.realpath(path)


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def check(path: str, flag: str) -> None:
    """Fail now, before any work, if ``path`` could not be written at the end of the run."""
    if not path:
        raise OutputError(f"{flag}: empty file name")
    target = _target(path)
    if os.path.isdir(target):
        raise OutputError(f"{flag}: cannot write {path}: it is a directory")
    directory = os.path.dirname(target)
    if not os.path.isdir(directory):
        raise OutputError(f"{flag}: cannot write {path}: directory {os.path.dirname(path) or '.'} does not exist")
    if os.path.exists(target) and not os.access(target, os.W_OK):
        read_only = os.statvfs(directory).f_flag & os.ST_RDONLY
        raise OutputError(f"{flag}: cannot write {path}: {os.strerror(errno.EROFS if read_only else errno.EACCES)}")
    # a probe file proves the directory takes new files (permissions, read-only mounts) and leaves no trace
    staged = _Staged.open(target, flag, path)
    staged.discard()


def _hidden_name(target: str) -> str:
    return tempfile.mktemp(prefix=f".{os.path.basename(target)}.", suffix=".part", dir=os.path.dirname(target))


def _hidden_file(target: str) -> tuple[int, str]:
    """A new hidden file beside ``target``, with the mode the umask gives: (fd, its name)."""
    fd, name = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", suffix=".part",
                                dir=os.path.dirname(target))
    os.fchmod(fd, 0o666 & ~_umask())
    return fd, name


_AT_FDCWD, _AT_EMPTY_PATH = -100, 0x1000


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _name_unnamed(fd: int, name: str) -> bool:
    """Link the unnamed file ``fd`` as ``name``: True, or False where this system allows no way.

    Through /proc first (any user); else linkat(AT_EMPTY_PATH) (needs CAP_DAC_READ_SEARCH).
    """
    try:
        os.link(f"/proc/self/fd/{fd}", name, follow_symlinks=True)
        return True
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.ENOENT, errno.EPERM, errno.EACCES):
            raise
    libc = _libc()
    if libc.linkat(fd, b"", _AT_FDCWD, os.fsencode(name), _AT_EMPTY_PATH) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EXDEV, errno.ENOENT, errno.EPERM, errno.EACCES, errno.EINVAL):
        return False
    raise OSError(code, os.strerror(code), name)


@attrs.define
class _Staged:
    """A complete file's bytes in an unnamed (or hidden) file, waiting to be linked into place."""

    fd: int
    hidden: str | None  # the fallback's visible temporary name, or a link made while committing
    target: str
    flag: str
    shown: str  # the path as the user gave it
    placed_new: bool = False  # linked straight to the target's name, which did not exist

    @classmethod
    def open(cls, target: str, flag: str, shown: str) -> "_Staged":
        directory = os.path.dirname(target)
        try:
            if _O_TMPFILE:
                try:
                    return cls(os.open(directory, _O_TMPFILE | os.O_WRONLY, 0o666), None, target, flag, shown)
                except OSError as exc:
                    if exc.errno not in _NO_TMPFILE:
                        raise
            return cls(*_hidden_file(target), flag=flag, shown=shown, target=target)
        except OSError as exc:
            raise OutputError(f"{flag}: cannot write {shown}: {_reason(exc)}") from None

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self.fd, view):]
        except OSError as exc:
            raise OutputError(f"{self.flag}: cannot write {self.shown}: {_reason(exc)}") from None

    def link(self, data: bytes) -> None:
        """Give the file a name in its directory (hidden when the target exists, else the target).

        Where the unnamed file cannot be given a name (some sandboxes refuse both ways), its
        ``data`` is written again under a hidden name.
        """
        if self.hidden is not None:
            return
        try:
            if not os.path.lexists(self.target) and _name_unnamed(self.fd, self.target):
                self.placed_new = True
                return
            name = _hidden_name(self.target)
            if _name_unnamed(self.fd, name):
                self.hidden = name
                return
            self.close()
            self.fd, self.hidden = _hidden_file(self.target)
        except OSError as exc:
            raise OutputError(f"{self.flag}: cannot write {self.shown}: {_reason(exc)}") from None
        self.write(data)

    def place(self) -> None:
        if self.hidden is not None:
            try:
                os.replace(self.hidden, self.target)
            except OSError as exc:
                raise OutputError(f"{self.flag}: cannot write {self.shown}: {_reason(exc)}") from None
            self.hidden = None
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def discard(self) -> None:
        self.close()
        if self.hidden is not None:
            try:
                os.unlink(self.hidden)
            except OSError:
                pass
            self.hidden = None


def write_all(outputs: Sequence[Output]) -> None:
    """Write every output, or none: on any failure nothing new is left and old files are intact.

    Every file is first written out whole (this is where a full disk shows), then each gets a
    name, then names are swapped into place; only that last step touches existing files.
    """
    staged: list[_Staged] = []
    try:
        for out in outputs:
            staged.append(_Staged.open(_target(out.path), out.flag, out.path))
            staged[-1].write(out.data)
        for s, out in zip(staged, outputs):
            s.link(out.data)
        for s in staged:
            s.place()
    except BaseException:
        for s in staged:
            s.discard()
            if s.placed_new:  # a new name made before the failure: the run leaves nothing
                try:
                    os.unlink(s.target)
                except OSError:
                    pass
        raise


def write_bytes(path: str, data: bytes, flag: str) -> None:
    """Write one file through the same all-or-nothing path."""
    write_all([Output(path, data, flag)])
