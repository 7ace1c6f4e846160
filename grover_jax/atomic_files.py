"""Outputs written whole or not at all: each file is written under a temporary name in its own
folder and renamed onto its final name (`os.replace`), and a folder (a store, a model export) is
built beside its target and swapped in, so a reader never sees half a file or folder and an
interrupted run leaves the previous one in place."""

import atexit
import contextlib
import csv
import glob
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yields a temporary path beside `path` (same suffix, so matplotlib infers the format) to
    write; renames it onto `path` when the block ends, removes it if the block raises."""
    path = Path(path)
    temporary = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


@contextlib.contextmanager
def csv_writer(path: str | Path) -> Iterator[Any]:
    """A `csv.writer` on a temporary file that becomes `path` when the block ends."""
    with atomic_output(path) as temporary, open(temporary, "w", newline="") as handle:
        yield csv.writer(handle)


def save_figure(figure: Any, path: str | Path, dpi: int = 120) -> None:
    """`figure.savefig(path)` atomically, then close the figure. A PNG gets an SVG of the same name
    beside it: vector graphics scale for print and can be edited."""
    import matplotlib.pyplot as plt

    path = Path(path)
    try:
        with atomic_output(path) as temporary:
            figure.savefig(temporary, dpi=dpi)
        if path.suffix == ".png":
            with atomic_output(path.with_suffix(".svg")) as temporary:
                figure.savefig(temporary, metadata={"Date": None})  # no timestamp: same figure, same file
    finally:
        plt.close(figure)


def write_text(path: str | Path, text: str) -> None:
    with atomic_output(path) as temporary:
        Path(temporary).write_text(text)


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_output(path) as temporary:
        Path(temporary).write_bytes(data)


# Folders from `temporary_folder` not yet moved into place by `replace_folder`: a build that raised
# leaves its folder here, and `discard_unfinished_folders` (the CLI on any error, and at exit at the
# latest) removes it, so a failed build (disk full, read-only target) leaves nothing behind.
_unfinished: set[Path] = set()


def temporary_folder(out: Path) -> Path:
    """An empty sibling folder to build `out` in. Leftovers of earlier builds of `out` by processes
    that no longer run (killed, or out of disk) are swept first."""
    _sweep_leftovers(out)
    temporary = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir(parents=True)
    _unfinished.add(temporary)
    return temporary


def replace_folder(temporary: Path, out: Path) -> None:
    """Move the finished `temporary` folder onto `out`, retiring an existing `out` only after."""
    if out.exists():
        retired = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, retired)
        os.replace(temporary, out)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        os.replace(temporary, out)
    _unfinished.discard(temporary)


def discard_unfinished_folders() -> None:
    """Remove this process's temporary folders whose build did not finish."""
    while _unfinished:
        shutil.rmtree(_unfinished.pop(), ignore_errors=True)


atexit.register(discard_unfinished_folders)


def _sweep_leftovers(out: Path) -> None:
    """Remove `.<name>.tmp-PID` siblings of `out` whose process is gone, and `.<name>.old-PID` ones
    once `out` exists again (before that, an interrupted swap's `.old` is the only copy)."""
    if not out.parent.is_dir():
        return
    kinds = ("tmp", "old") if out.exists() else ("tmp",)
    for kind in kinds:
        for leftover in out.parent.glob(f".{glob.escape(out.name)}.{kind}-*"):
            pid = leftover.name.rpartition("-")[2]
            if pid.isdigit() and int(pid) != os.getpid() and not _process_exists(int(pid)):
                shutil.rmtree(leftover, ignore_errors=True)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
