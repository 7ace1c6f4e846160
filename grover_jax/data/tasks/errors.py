"""Errors in task data a person can fix: each names the file, the line and the field."""

from grover_jax.errors import GroverError


class TaskDataError(GroverError):
    """e.g. `labels.csv line 17, field 'sequence': unexpected character 'X' at column 42`."""

    def __init__(self, path: str, message: str, line: int | None = None, field: str | None = None):
        self.path, self.line, self.field = str(path), line, field
        where = self.path
        if line is not None:
            where += f" line {line}"
        if field is not None:
            where += f", field {field!r}"
        super().__init__(f"{where}: {message}")


class FinetuneError(GroverError):
    """A fine-tuning folder or request that cannot be used, e.g. `runs/ft: not a fine-tuning folder
    (best/params.npz is missing)`."""
