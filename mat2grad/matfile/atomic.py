"""The one atomic replace every writer of a result file uses: the result is written to a
temporary file in the target's folder and moved over the target once complete, so the
target is always either the old file or the whole new one, and no temporary file outlives
the process (see NOTE: [Temporary files that cannot outlive the process]).
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import signal
import socket
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from ..errors import Mat2GradError

__all__ = [
    "Temporary",
    "temporary_beside",
    "replace_atomically",
    "write_bytes_atomically",
    "target_folder",
]

# NOTE: [Temporary files that cannot outlive the process]
#     On Linux the temporary is an unnamed file: ``open(folder, O_TMPFILE)`` creates an inode
#     in the target's folder (same filesystem, so the final rename is atomic) that has no
#     name. If the process dies before the end, even by SIGKILL, the kernel frees it with the
#     last descriptor and nothing is left in the folder. At the end it is given a private
#     name with ``linkat("/proc/self/fd/N", ..., AT_SYMLINK_FOLLOW)`` and renamed over the
#     target (``linkat`` cannot replace an existing name, ``rename`` can, atomically).
#     Elsewhere, or where the filesystem refuses O_TMPFILE (or /proc is not mounted), it is
#     a named file ``.<target>.m2g<host>p<pid>.<random>.tmp``: removed on any error, on
#     SIGINT (KeyboardInterrupt), and on SIGTERM/SIGHUP by a handler installed while such
#     files exist; after SIGKILL or a crash the next write to the same folder removes the
#     temporaries whose process (on this host) is gone. Both kinds are written through
#     their descriptor, never reopened by name (``h5py`` writes v7.3 files through a Python
#     file object on it).

#: names of the named temporaries: ``.<target>.m2g<host hash>p<pid>.<random>.tmp``
_STALE = re.compile(r"^\..+\.m2g(?P<host>[0-9a-f]{8})p(?P<pid>\d+)\.[A-Za-z0-9_]+\.tmp$")
_HOST = hashlib.sha1(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]

#: O_TMPFILE is used where the OS has it and /proc can name the descriptor for linkat;
#: tests set it to ``False`` to exercise the named temporaries
use_o_tmpfile = hasattr(os, "O_TMPFILE") and os.path.isdir("/proc/self/fd")

#: errors with which a filesystem (or an old kernel) refuses O_TMPFILE
_NO_TMPFILE = {errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, getattr(errno, "ENOTSUP", -1)}


class Temporary:
    """A file being written that appears at ``path`` only when :meth:`commit` succeeds.

    Write it through :attr:`fd` (or :meth:`file`), never by name: an unnamed (O_TMPFILE)
    temporary has none. :meth:`commit` and :meth:`discard` close the descriptor.
    """

    def __init__(self, path: Path):
        self.path = path
        self.folder = target_folder(path)
        self.name: str | None = None  # the named temporary, or the unnamed one once linked
        sweep_stale(self.folder)
        try:
            self.fd = self._open_unnamed() if use_o_tmpfile else None
            if self.fd is None:
                self.fd, self.name = self._open_named()
        except OSError as exc:
            raise Mat2GradError(
                f"{path}: cannot create a file in the folder {self.folder} ({exc.strerror}); "
                "write the result to a folder you have write permission for"
            ) from None

    def _open_unnamed(self) -> int | None:
        try:
            return os.open(self.folder, os.O_TMPFILE | os.O_RDWR, 0o666)
        except OSError as exc:
            if exc.errno in _NO_TMPFILE:
                return None  # this filesystem cannot: a named temporary instead
            raise

    def _open_named(self) -> tuple[int, str]:
        fd, name = tempfile.mkstemp(
            prefix=f".{self.path.name}.m2g{_HOST}p{os.getpid()}.", suffix=".tmp", dir=self.folder
        )
        _remember(name)
        # the permissions a plainly created file gets (0666 minus the umask), not mkstemp's
        # private 0600, since it becomes the result file
        umask = os.umask(0)
        os.umask(umask)
        try:
            os.fchmod(fd, 0o666 & ~umask)
        except (AttributeError, OSError):  # Windows: no fchmod; mkstemp's mode is fine there
            pass
        return fd, name

    def file(self) -> IO[bytes]:
        """A binary file object on the descriptor; closing it leaves the descriptor open."""
        return os.fdopen(self.fd, "r+b", closefd=False)

    def commit(self) -> Path:
        """Move the complete file over :attr:`path` (atomically) and close it."""
        if self.name is None:
            self.name = self._link()
        self._close()
        os.replace(self.name, self.path)
        _forget(self.name)
        self.name = None
        return self.path

    def _link(self) -> str:
        """Give the unnamed temporary a private name in its folder."""
        folder_fd = os.open(self.folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            for _ in range(100):
                name = f".{self.path.name}.m2g{_HOST}p{os.getpid()}.{os.urandom(6).hex()}.tmp"
                try:
                    # dst_dir_fd makes os.link call linkat, which follows the /proc link
                    os.link(
                        f"/proc/self/fd/{self.fd}", name, dst_dir_fd=folder_fd, follow_symlinks=True
                    )
                except FileExistsError:
                    continue
                return str(self.folder / name)
            raise FileExistsError(errno.EEXIST, "no free temporary name", str(self.folder))
        finally:
            os.close(folder_fd)

    def discard(self) -> None:
        """Drop the file; :attr:`path` is left untouched."""
        self._close()
        if self.name is not None:
            try:
                os.unlink(self.name)
            except OSError:
                pass
            _forget(self.name)
            self.name = None

    def _close(self) -> None:
        if self.fd is not None:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = None


def temporary_beside(path: str | os.PathLike[str]) -> Temporary:
    """A new :class:`Temporary` for writing ``path`` atomically.

    Raises:
        Mat2GradError: the folder is missing or cannot be written to.
    """
    return Temporary(Path(path))


def replace_atomically(
    tmp: Temporary, finish: Callable[[], None], *, what: str = "MAT-file"
) -> Path:
    """Complete the temporary file with ``finish()``, then move it over its target; on any
    failure drop it and leave the target untouched.

    Raises:
        Mat2GradError: ``finish`` or the move failed (a :class:`Mat2GradError` or a
            ``KeyboardInterrupt`` from ``finish`` propagates as it is).
    """
    try:
        finish()
        return tmp.commit()
    except BaseException as exc:
        tmp.discard()
        if isinstance(exc, Mat2GradError | KeyboardInterrupt | SystemExit):
            raise
        raise Mat2GradError(f"{tmp.path}: could not write the {what} ({exc})") from None


def write_bytes_atomically(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically: the target is either the old file or the
    whole new one.

    Raises:
        Mat2GradError: the folder is missing or the file could not be written.
    """
    tmp = temporary_beside(path)

    def finish() -> None:
        with tmp.file() as fh:
            fh.write(data)

    return replace_atomically(tmp, finish, what="file")


def target_folder(path: Path) -> Path:
    """The folder ``path`` will be written in; it must exist."""
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise Mat2GradError(f"{path}: the folder {folder} does not exist")
    return folder


# --------------------------------------------------------------------------------------
# Named temporaries: removed on SIGTERM/SIGHUP, and by the next write after a crash
# --------------------------------------------------------------------------------------

_live: set[str] = set()
_lock = threading.Lock()
_previous: dict[int, Any] = {}


def _remember(name: str) -> None:
    with _lock:
        _live.add(name)
    _install_handlers()


def _forget(name: str) -> None:
    with _lock:
        _live.discard(name)


def _install_handlers() -> None:
    """Remove live named temporaries on SIGTERM/SIGHUP (once per process; only from the
    main thread, where Python allows handlers; a signal the program ignores stays ignored)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for name in ("SIGTERM", "SIGHUP"):
        signum = getattr(signal, name, None)
        if signum is None or signum in _previous:
            continue
        previous = signal.getsignal(signum)
        if previous in (signal.SIG_IGN, None):
            continue
        _previous[signum] = previous
        signal.signal(signum, _on_signal)


def _on_signal(signum: int, frame: Any) -> None:
    with _lock:
        names = list(_live)
        _live.clear()
    for name in names:
        try:
            os.unlink(name)
        except OSError:
            pass
    previous = _previous.get(signum, signal.SIG_DFL)
    if callable(previous):
        previous(signum, frame)
        return
    # the default action (terminate), with the exit status a killed process has
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def sweep_stale(folder: Path) -> None:
    """Remove named temporaries in ``folder`` left by processes of this host that are gone
    (killed by SIGKILL, or crashed)."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        match = _STALE.match(entry.name)
        if match is None or match["host"] != _HOST:
            continue
        pid = int(match["pid"])
        if pid == os.getpid() or _alive(pid):
            continue
        try:
            os.unlink(entry.path)
        except OSError:
            pass


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists (when unsure: yes, so its files are kept)."""
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process on Windows
        import ctypes  # function-local: Windows only

        kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
        handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return kernel32.GetLastError() == 5  # access denied: it exists
        code = ctypes.c_ulong()
        try:
            if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
                return True
            return code.value == 259  # STILL_ACTIVE
        finally:
            kernel32.CloseHandle(handle)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, owned by someone else
        return True
    return True
