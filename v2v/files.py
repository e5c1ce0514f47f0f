"""Writing outputs atomically, with the user's permissions, and without leftovers after a kill.

Every output (model file, video, PNG folder, dataset sequence) is written under a temporary name beside its
final name and renamed over it when complete, so a crash never leaves a half-written file under the final
name.  The temporary name carries the writer's process id, ``.<name>.<pid>.<random>.tmp<suffix>``, so the
next writer of the same output can tell a leftover of a killed process (its pid no longer runs) from a
concurrent writer, and removes it.  ``tempfile`` creates files 0600 and folders 0700; outputs are meant to
be read by others as any file the user makes, so their mode follows the umask.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from pathlib import Path

STALE_UNKNOWN_AGE_S = 24 * 3600   # a temporary of unknown owner (older naming) this old is a leftover


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def apply_umask(path: Path, *, folder: bool) -> None:
    """Give ``path`` the mode a plain ``open``/``mkdir`` would have (0666 / 0777 less the umask)."""
    os.chmod(path, (0o777 if folder else 0o666) & ~current_umask())


def _prefix(final: Path) -> str:
    return f".{final.name}."


def temporary_beside(final: str | os.PathLike, *, folder: bool = False, suffix: str = "") -> Path:
    """A new empty temporary file (or folder) in ``final``'s folder, named for ``final`` and this process,
    with the umask's mode; leftovers of killed writers of ``final`` are removed first."""
    final = Path(final)
    parent = final.parent if str(final.parent) else Path(".")
    parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(final)
    prefix = f"{_prefix(final)}{os.getpid()}."
    if folder:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=parent))
    else:
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=f".tmp{suffix}", dir=parent)
        os.close(fd)
        tmp = Path(name)
    apply_umask(tmp, folder=folder)
    return tmp


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:               # PermissionError: another user's process, so it runs
        return True
    return True


def remove_leftovers(final: str | os.PathLike) -> list[Path]:
    """Remove temporaries of ``final`` whose writer no longer runs (and unowned ones older than a day)."""
    final = Path(final)
    parent = final.parent if str(final.parent) else Path(".")
    if not parent.is_dir():
        return []
    pattern = re.compile(re.escape(_prefix(final)) + r"(?:(\d+)\.)?[^/]*\.tmp[^/]*$")
    removed = []
    for p in parent.iterdir():
        m = pattern.fullmatch(p.name)
        if not m:
            continue
        pid = m.group(1)
        try:
            stale = (not _pid_running(int(pid))) if pid else time.time() - p.lstat().st_mtime > STALE_UNKNOWN_AGE_S
        except OSError:
            continue
        if not stale:             # (this process runs, so its own temporaries are never stale)
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed.append(p)
    return removed


def fsync_dir(folder: str | os.PathLike) -> None:
    """Make a rename in ``folder`` durable (a no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
