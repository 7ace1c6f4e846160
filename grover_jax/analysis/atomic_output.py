"""Analysis outputs written whole or not at all: each file is written under a temporary name in its
own folder and renamed onto its final name (`os.replace`), so a reader never sees half a CSV or PNG
and an interrupted run leaves the previous file in place."""

import contextlib
import csv
import os
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
    """`figure.savefig(path)` atomically, then close the figure."""
    import matplotlib.pyplot as plt

    try:
        with atomic_output(path) as temporary:
            figure.savefig(temporary, dpi=dpi)
    finally:
        plt.close(figure)
