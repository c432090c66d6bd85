"""Writes confined to the folder the user named.

Names that come from data (loss names, task labels, seeds read from a database) become path
components only through :func:`safe_component`; every output path is built with
:func:`inside`, which refuses anything that resolves outside its root; files are replaced with
:func:`write_text` / :func:`write_bytes`, which never follow a symlink at the destination.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
# The process's umask, read once: replaced files get the permissions a plain open() would give
# them (mkstemp creates its files readable by the owner only).
_UMASK = os.umask(0o022)
os.umask(_UMASK)
_MAX_COMPONENT = 80


class UnsafePathError(ValueError):
    """A path that would leave the folder it must stay in, or a file where a folder is needed."""


def safe_component(name: object) -> str:
    """``name`` as one harmless path component: only ``[A-Za-z0-9_.-]``, never ``.`` or ``..``.

    A name that had to change gets a short digest of the original appended, so two different
    names never map to the same component.

    Args:
        name: the name to turn into a component (``str(name)`` is used).

    Returns:
        A non-empty component of at most about 90 characters.
    """
    text = str(name)
    cleaned = _UNSAFE.sub("_", text).strip(".")[:_MAX_COMPONENT]
    if cleaned == text and cleaned not in ("", ".", ".."):
        return cleaned
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{cleaned or 'x'}-{digest}"


def check_folder(path: str | os.PathLike[str], *, option: str) -> Path:
    """``path`` as a folder that exists or can be created, without creating anything (to
    refuse a bad output option before any work starts).

    Raises:
        UnsafePathError: ``path`` (or a parent) exists and is not a folder; the message names
            ``option``.
    """
    folder = Path(path)
    for candidate in (folder, *folder.parents):
        if candidate.exists() and not candidate.is_dir():
            raise UnsafePathError(
                f"{option}: expected a folder, but {str(candidate)!r} is a file"
            )
    return folder


def check_file(path: str | os.PathLike[str], *, option: str) -> Path:
    """``path`` as a file that exists or can be created (its folder may not exist yet).

    Raises:
        UnsafePathError: ``path`` is a folder, or a parent exists and is not a folder.
    """
    file = Path(path)
    if file.is_dir():
        raise UnsafePathError(f"{option}: expected a file, but {str(file)!r} is a folder")
    check_folder(file.parent, option=option)
    return file


def ensure_folder(path: str | os.PathLike[str], *, option: str) -> Path:
    """Create folder ``path`` (and parents) or accept an existing one.

    Raises:
        UnsafePathError: ``path`` (or a parent) exists and is not a folder; the message names
            ``option``.
    """
    folder = check_folder(path, option=option)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def inside(root: str | os.PathLike[str], *parts: str, file: bool = False) -> Path:
    """``root / parts...``, checked to resolve inside ``root``.

    Args:
        root: the folder everything must stay in.
        *parts: path components (pass data-derived names through :func:`safe_component`).
        file: the last part names a file that :func:`write_text` / :func:`write_bytes` will
            replace; a symlink there is replaced rather than followed, so only the folder
            holding it must resolve inside ``root``.

    Raises:
        UnsafePathError: the joined path resolves (following existing symlinks) outside
            ``root``, or a part is absolute.
    """
    base = Path(root).resolve()
    for part in parts:
        if Path(part).is_absolute():
            raise UnsafePathError(f"path component {part!r} is absolute; expected a name inside {str(base)!r}")
    target = base.joinpath(*parts)
    if file and parts and Path(parts[-1]).name in ("", ".", ".."):
        raise UnsafePathError(f"path {str(target)!r}: expected a file name, got {parts[-1]!r}")
    resolved = target.parent.resolve() / target.name if file and parts else target.resolve()
    if resolved != base and base not in resolved.parents:
        raise UnsafePathError(f"path {str(target)!r} resolves outside {str(base)!r}")
    return target


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Replace file ``path`` with ``data`` atomically; a symlink there is replaced, not followed."""
    target = Path(path)
    if target.is_dir() and not target.is_symlink():
        raise UnsafePathError(f"expected a file path, but {str(target)!r} is a folder")
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, target)  # replaces the link itself: its target is never written
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def write_text(path: str | os.PathLike[str], text: str, *, encoding: str = "utf-8") -> Path:
    """:func:`write_bytes` for text."""
    return write_bytes(path, text.encode(encoding))
