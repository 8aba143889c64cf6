"""The project's one atomic writer: text, bytes, CSV rows and ``torch.save`` objects, each written to a temporary
file in the destination folder and moved into place with ``os.replace``.

``os.replace`` is atomic within one file system (POSIX ``rename``), so a reader sees the old file or the new one,
never a partial one, and a crash never corrupts what an earlier run wrote. Every file the package writes
(checkpoints, ``summary.json``, ``trials.csv``, the report's files, the data cache) goes through here.
"""
from __future__ import annotations

import contextlib
import csv
import io
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch


def _umask() -> int:
    """The process's file-creation mask (read without changing it for longer than the two calls)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def _replacing(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary file name beside ``path``; on success give it the mode a plain ``open`` would (0666 less
    the umask; ``mkstemp`` makes it 0600) and ``os.replace`` it onto ``path``; on any failure remove it.

    Raises:
        OSError: the folder cannot be created or written, or the replace fails.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file in the same folder, then ``os.replace`` onto ``path``.

    ``os.replace`` is atomic within one file system (POSIX ``rename``), so readers see the old file or the new
    one, never a partial one; the temporary file is removed on any failure. Missing parent folders are created;
    the file gets the usual mode (0666 less the umask).

    Args:
        obj: anything ``torch.save`` can pickle (load it back with ``weights_only=True`` only if it holds tensors,
            plain containers and numbers).
        path: the destination file.
    Raises:
        OSError: the folder cannot be created or written, or the replace fails.
    """
    with _replacing(path) as tmp:
        torch.save(obj, tmp)


def atomic_write(path: str | os.PathLike, data: bytes | str) -> None:
    """Write text or bytes atomically: a temporary file in the same folder, then ``os.replace``.

    Readers see the old file or the new one, never a partial one; the temporary file is removed on any failure.
    Missing parent folders are created; the file gets the usual mode (0666 less the umask).

    Args:
        path: the destination file.
        data: bytes, or text written as UTF-8 (no newline translation).
    Raises:
        OSError: the folder cannot be created or written, or the replace fails.
    """
    with _replacing(path) as tmp, open(tmp, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


def atomic_write_csv(path: str | os.PathLike, rows: list[dict]) -> None:
    """Write dict rows as CSV atomically (see :func:`atomic_write`); Python's ``csv`` excel dialect, UTF-8.

    Args:
        path: the destination file.
        rows: one dict per row; the header is the union of the rows' keys in first-seen order and a row without
            a key gets an empty cell. No rows: a file holding only an empty header line.
    Raises:
        OSError: as :func:`atomic_write`.
    """
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, buf.getvalue())
