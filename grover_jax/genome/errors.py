"""Errors a person can act on: each names the file and, where there is one, the line."""


class GenomeFormatError(ValueError):
    """A FASTA/2bit/BED input that cannot be read, e.g. `chr21.fa line 1843: unexpected character 'X'`."""

    def __init__(self, path: str, line: int | None, message: str):
        self.path = str(path)
        self.line = line
        where = f"{self.path} line {line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")
