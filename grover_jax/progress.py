"""Progress bars that suit where they are written.

On a terminal (or in a notebook) a bar is tqdm's live bar. Written to a file, a pipe or a cluster
log, tqdm would redraw one line with carriage returns, several times a second, so the log gets one
line of kilobytes; there each redraw becomes its own plain line instead, at most one every
`GROVER_JAX_PROGRESS_SECONDS` seconds (default 30), plus the bar's first and last state.
"""

import os
import sys
from typing import Any, TextIO

from tqdm.auto import tqdm

# tqdm.auto is the notebook widget under Jupyter: it has no carriage returns to turn into lines.
_NOTEBOOK = any("notebook" in cls.__module__ for cls in tqdm.__mro__)


def log_every_seconds() -> float:
    return float(os.environ.get("GROVER_JAX_PROGRESS_SECONDS", "30"))


class _Lines:
    """A stream for tqdm that writes each redraw ('\\r' + bar + padding) as one line, and drops the
    bare '\\r' / '\\n' / blank redraws tqdm writes to clear or end a bar."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.encoding = getattr(stream, "encoding", None) or "utf-8"

    def write(self, text: str) -> None:
        line = text.replace("\r", "").rstrip()
        if line:
            self.stream.write(line + "\n")

    def flush(self) -> None:
        self.stream.flush()


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def progress_bar(*args: Any, **kwargs: Any) -> tqdm:
    """`tqdm(*args, **kwargs)` (stderr unless `file=`), as plain lines where that is not a terminal."""
    stream = kwargs.get("file") or sys.stderr
    if not _NOTEBOOK and not _is_terminal(stream):
        kwargs["file"] = _Lines(stream)
        kwargs["mininterval"] = max(kwargs.get("mininterval") or 0.0, log_every_seconds())
        # tqdm's monitor thread redraws a slow bar every maxinterval seconds: no more often either.
        kwargs["maxinterval"] = max(kwargs.get("maxinterval") or 10.0, kwargs["mininterval"])
        kwargs.setdefault("ncols", 100)
        kwargs.setdefault("ascii", True)
        kwargs["leave"] = True  # a log keeps each bar's last state: how far it got, how fast
    return tqdm(*args, **kwargs)
