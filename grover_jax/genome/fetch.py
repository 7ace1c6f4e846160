"""`grover data fetch`: whole assemblies as one FASTA file per chromosome, verified, resumable, atomic.

A source is an assembly name (`hg19`, `hg38`: UCSC's per-chromosome folder), a URL of such a folder or
of one file, a local directory of FASTA files, or one local FASTA file; all go through the same steps:
  1. the md5 list (`md5sum.txt` beside the files, as UCSC publishes it) gives the expected checksums;
  2. each file is streamed into `<name>.part`, continuing a partial `.part` with an HTTP Range request;
  3. its md5 is checked, then it is renamed to `<name>`: a file without `.part` is always whole and verified;
  4. `manifest.json` records file, chromosome (normalised once, by `naming.canonical_chromosome_name`),
     the name it was asked for, source, md5 and size, rewritten atomically after every file.
Nothing here is imported by the rest of the system, so no other command touches the network.
"""

import hashlib
import http.client
import json
import os
import re
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from grover_jax.errors import GroverError
from grover_jax.genome.naming import canonical_chromosome_name
from grover_jax.progress import progress_bar

ASSEMBLY_URLS = {
    "hg19": "https://hgdownload.soe.ucsc.edu/goldenPath/hg19/chromosomes/",
    "hg38": "https://hgdownload.soe.ucsc.edu/goldenPath/hg38/chromosomes/",
}
MD5_LIST = "md5sum.txt"
MANIFEST = "manifest.json"
FASTA_SUFFIXES = (".fa.gz", ".fasta.gz", ".fna.gz", ".fa", ".fasta", ".fna")
_CHUNK = 1 << 20


class FetchError(GroverError, RuntimeError):
    """One line a person can act on, e.g. `chr20.fa.gz: md5 mismatch ...`."""


class TransientFetchError(FetchError):
    """A failure that may pass if tried again (no connection, a dropped one, HTTP 5xx, 408, 429):
    the only kind a fetch retries. A 404 or 403 is reported at once."""


# HTTP statuses that say "not now" rather than "not here": worth a retry.
_TRANSIENT_HTTP = frozenset({408, 425, 429, 500, 502, 503, 504})


def _http_error(url: str, error: urllib.error.HTTPError) -> FetchError:
    kind = TransientFetchError if error.code in _TRANSIENT_HTTP else FetchError
    return kind(f"{url}: HTTP {error.code} {error.reason}")


@dataclass(frozen=True)
class FetchItem:
    file: str  # name in the output folder
    chromosome: str  # normalised name
    requested: str  # as asked for (or as the source names it)
    source: str  # URL or local path
    md5: str | None  # expected, from the md5 list; None where the source publishes none


def fasta_stem(name: str) -> str:
    for suffix in FASTA_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _natural_key(name: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def expand_fasta_paths(paths: list[str | Path]) -> list[str]:
    """FASTA paths with each directory replaced by its files: the order of its manifest.json when
    `grover data fetch` wrote one, else chromosome order (chr1, chr2, ..., chr10, ...)."""
    files: list[str] = []
    for path in map(Path, paths):
        if not path.is_dir():
            files.append(str(path))
            continue
        manifest = path / MANIFEST
        if manifest.exists():
            files.extend(str(path / row["file"]) for row in read_manifest(manifest))
            continue
        found = sorted((p.name for p in path.iterdir() if p.name.endswith(FASTA_SUFFIXES)), key=_natural_key)
        if not found:
            raise FileNotFoundError(f"{path}: no FASTA files ({', '.join(FASTA_SUFFIXES)}) in this folder")
        files.extend(str(path / name) for name in found)
    return files


def _check_plain_name(name: str, where: str) -> str:
    """A listing names files of its own folder: a path in it (`../x`, `/etc/x`, `a/b`) would make
    the fetch write outside the output folder."""
    if name in ("", ".", "..") or any(c in name for c in "/\\\0"):
        raise FetchError(f"{where}: {name!r} is not a plain file name (a listing may name only files beside it)")
    return name


def parse_md5_list(text: str, where: str) -> dict[str, str]:
    """`<md5>  <file>` lines (md5sum's format, `*` for binary mode tolerated) -> {file: md5}."""
    checksums = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not re.fullmatch(r"[0-9a-fA-F]{32}", parts[0]):
            raise FetchError(f"{where} line {number}: expected '<md5> <file>', got {line.strip()!r}")
        name = _check_plain_name(parts[1].lstrip("*"), f"{where} line {number}")
        checksums[name] = parts[0].lower()
    return checksums


def read_manifest(path: Path) -> list[dict]:
    """The rows of a manifest.json that `fetch_genome` wrote; a damaged one is refused in one line."""
    try:
        rows = json.loads(path.read_text())["files"]
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as error:
        reason = f"{error.msg} at line {error.lineno}" if isinstance(error, json.JSONDecodeError) else (
            f"{type(error).__name__}: {error}")
        raise FetchError(f"{path}: not a readable {MANIFEST} ({reason}); delete it to fetch afresh") from None
    if not isinstance(rows, list):
        raise FetchError(f"{path}: 'files' is not a list; delete it to fetch afresh")
    for number, row in enumerate(rows, 1):
        if not (isinstance(row, dict) and isinstance(row.get("file"), str) and {"md5", "bytes"} <= row.keys()):
            raise FetchError(f"{path}: file entry {number} is not {{file, md5, bytes, ...}}; "
                             "delete it to fetch afresh")
        _check_plain_name(row["file"], f"{path} file entry {number}")
    return rows


def _is_url(source: str) -> bool:
    return source.startswith(("http://", "https://", "ftp://"))


def _read_url_text(url: str, timeout: float) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return None
        raise FetchError(f"{url}: HTTP {error.code} {error.reason}") from None
    except (urllib.error.URLError, OSError) as error:
        raise FetchError(f"{url}: cannot connect ({getattr(error, 'reason', error)})") from None


def _chromosome_file(chromosome: str, available: dict[str, str]) -> str:
    """The file holding `chromosome` among `available` (file -> md5), trying UCSC then Ensembl naming."""
    canonical = canonical_chromosome_name(chromosome)
    for name in (canonical, chromosome, canonical.removeprefix("chr")):
        for suffix in FASTA_SUFFIXES:
            if name + suffix in available:
                return name + suffix
    raise FetchError(f"chromosome {chromosome!r} ({canonical}) is not among the {len(available)} files of the source")


def plan_fetch(source: str, chromosomes: list[str] | None = None, timeout: float = 60.0) -> list[FetchItem]:
    """What to fetch from `source` (assembly name, folder URL, file URL, local folder or file)."""
    base = ASSEMBLY_URLS.get(source, source)
    if _is_url(base):
        folder, _, file_name = base.rpartition("/")
        md5_text = _read_url_text(f"{folder}/{MD5_LIST}", timeout)
        checksums = parse_md5_list(md5_text, f"{folder}/{MD5_LIST}") if md5_text is not None else {}
        prefix = folder + "/"
    else:
        path = Path(base)
        if not path.exists():
            known = ", ".join(sorted(ASSEMBLY_URLS))
            raise FetchError(f"{source}: not an assembly name ({known}), a URL, or an existing file or folder")
        folder_path, file_name = (path, "") if path.is_dir() else (path.parent, path.name)
        md5_path = folder_path / MD5_LIST
        checksums = parse_md5_list(md5_path.read_text(), str(md5_path)) if md5_path.exists() else {}
        if not checksums and (folder_path / MANIFEST).exists():  # a folder an earlier fetch verified
            checksums = {row["file"]: row["md5"] for row in read_manifest(folder_path / MANIFEST)}
        if path.is_dir() and not checksums:
            checksums = {Path(p).name: None for p in expand_fasta_paths([path])}
        prefix = str(folder_path) + os.sep
    if file_name:
        if chromosomes:
            raise FetchError(f"{source}: --chromosomes selects files of a folder; this source is one file")
        return [FetchItem(file_name, canonical_chromosome_name(fasta_stem(file_name)), fasta_stem(file_name),
                          prefix + file_name, checksums.get(file_name))]
    fasta_files = {name: md5 for name, md5 in checksums.items() if name.endswith(FASTA_SUFFIXES)}
    if not fasta_files:
        raise FetchError(f"{base}: no FASTA files listed (expected {MD5_LIST} naming *.fa.gz files)")
    if chromosomes:
        chosen = [(_chromosome_file(c, fasta_files), c) for c in chromosomes]
    else:
        chosen = [(name, fasta_stem(name)) for name in sorted(fasta_files, key=_natural_key)]
    return [
        FetchItem(name, canonical_chromosome_name(fasta_stem(name)), requested, prefix + name, fasta_files[name])
        for name, requested in chosen
    ]


def file_md5(path: str | Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(url: str, part: Path, timeout: float, progress: bool) -> None:
    """Stream `url` into `part`, continuing what `part` already holds (HTTP Range)."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and have:  # nothing past what we hold: the .part is whole, the md5 decides
            return
        raise _http_error(url, error) from None
    except (urllib.error.URLError, OSError) as error:
        raise TransientFetchError(f"{url}: cannot connect ({getattr(error, 'reason', error)})") from None
    with response:
        resumed = response.status == 206
        if have and not resumed:
            have = 0  # the server ignored the Range: start over rather than append a second copy
        length = response.headers.get("Content-Length")
        expected = have + int(length) if length is not None else None
        received = have
        bar = progress_bar(total=expected, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                           desc=part.name.removesuffix(".part"), disable=not progress, mininterval=0.5)
        try:
            with open(part, "ab" if resumed else "wb") as out:
                while True:
                    try:
                        block = response.read(_CHUNK)
                    except (OSError, http.client.HTTPException) as error:  # IncompleteRead: server hung up
                        raise TransientFetchError(
                            f"{url}: connection lost after {received:,} of {expected or '?'} bytes ({error}); "
                            "run the command again to resume") from None
                    if not block:
                        break
                    out.write(block)
                    received += len(block)
                    bar.update(len(block))
                out.flush()
                os.fsync(out.fileno())
        finally:
            bar.close()
    if expected is not None and received != expected:
        raise TransientFetchError(f"{url}: connection closed after {received:,} of {expected:,} bytes; "
                         "run the command again to resume")


def _write_manifest(out_dir: Path, rows: list[dict], source: str) -> None:
    text = json.dumps({"source": source, "files": rows}, indent=1) + "\n"
    handle, temporary = tempfile.mkstemp(dir=out_dir, prefix=f".{MANIFEST}.", suffix=".tmp")
    with os.fdopen(handle, "w") as out:
        out.write(text)
    os.chmod(temporary, 0o644)
    os.replace(temporary, out_dir / MANIFEST)


def _refuse_source_as_destination(source: str, out_dir: Path) -> None:
    """A local source fetched into its own folder would have its files renamed to `.part` and
    re-verified in place: a fetch never moves or deletes a source file, so that is refused."""
    base = ASSEMBLY_URLS.get(source, source)
    if _is_url(base) or not Path(base).exists() or not out_dir.is_dir():
        return
    folder = Path(base) if Path(base).is_dir() else Path(base).parent
    if os.path.samefile(folder, out_dir):
        raise FetchError(f"--out {out_dir}: the source's own folder ({source}); fetch into another folder")


def fetch_genome(
    source: str, out_dir: str | Path, chromosomes: list[str] | None = None, progress: bool = True,
    retries: int = 3, timeout: float = 60.0,
) -> Path:
    """Fetch `source` into `out_dir` (one verified file per chromosome + manifest.json); re-running
    continues partial downloads and skips files already verified. Returns the manifest's path."""
    out_dir = Path(out_dir)
    _refuse_source_as_destination(source, out_dir)
    items = plan_fetch(source, chromosomes, timeout)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = out_dir / MANIFEST
    previous = {}
    if manifest_path.exists():
        previous = {row["file"]: row for row in read_manifest(manifest_path)}
    rows = [row for name, row in previous.items() if name not in {i.file for i in items}]
    for item in items:
        final = out_dir / item.file
        part = out_dir / (item.file + ".part")
        known = previous.get(item.file)
        if (final.exists() and known and final.stat().st_size == known["bytes"]
                and item.md5 in (None, known["md5"])):
            rows.append(known)  # verified when it was fetched
            continue
        if final.exists():
            os.replace(final, part)  # unrecorded: verify it like a download before trusting it
        for attempt in range(retries + 1):
            try:
                if _is_url(item.source):
                    _download(item.source, part, timeout, progress)
                elif not part.exists() or part.stat().st_size != Path(item.source).stat().st_size:
                    shutil.copyfile(item.source, part)
                break
            except TransientFetchError:
                if attempt == retries:
                    raise
                time.sleep(min(2.0**attempt, 30.0))
        md5 = file_md5(part)
        if item.md5 is not None and md5 != item.md5:
            part.unlink()
            raise FetchError(f"{item.file}: md5 mismatch (got {md5}, {MD5_LIST} says {item.md5}); "
                             "the corrupt download was deleted, run the command again")
        os.replace(part, final)
        rows.append({"file": item.file, "chromosome": item.chromosome, "requested": item.requested,
                     "source": item.source, "md5": md5, "md5_verified": item.md5 is not None,
                     "bytes": final.stat().st_size})
        _write_manifest(out_dir, rows, source)
    _write_manifest(out_dir, rows, source)
    return manifest_path
