"""Errors a person can act on: each names the file and, where there is one, the line."""

from grover_jax.errors import GroverError


class GenomeFormatError(GroverError):
    """A FASTA/2bit/BED input that cannot be read, e.g. `chr21.fa line 1843: unexpected character 'X'`
    or `tss.bed line 7, field 'end': interval 500-400 is empty or negative`."""

    def __init__(self, path: str, line: int | None, message: str, field: str | None = None):
        self.path = str(path)
        self.line = line
        self.field = field
        self.reason = message
        where = f"{self.path} line {line}" if line is not None else self.path
        if field is not None:
            where += f", field {field!r}"
        super().__init__(f"{where}: {message}")
