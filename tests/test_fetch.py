"""`grover data fetch` against a local HTTP server (127.0.0.1) serving real chr20 FASTA slices and an md5 list."""

import gzip
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from grover_jax.cli import main
from grover_jax.genome import read_genome
from grover_jax.genome.fetch import FetchError, expand_fasta_paths, fetch_genome


class GenomeServer:
    """Serves `files` over HTTP with Range support; `cut` makes the next full-file response of a file
    stop after that many bytes (a dropped connection); `requests` records (path, Range header)."""

    def __init__(self, files: dict[str, bytes]):
        self.files, self.cut, self.requests = dict(files), {}, []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                name = self.path.rsplit("/", 1)[-1]
                server.requests.append((name, self.headers.get("Range")))
                if name not in server.files:
                    self.send_error(404)
                    return
                data = server.files[name]
                start = 0
                if self.headers.get("Range"):
                    start = int(self.headers["Range"].removeprefix("bytes=").rstrip("-"))
                    if start >= len(data):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body = data[start:]
                if name in server.cut:
                    body = body[: server.cut.pop(name)]
                    self.close_connection = True
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/goldenPath/hg19/chromosomes/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def _fasta_gz(header: str, sequence: str) -> bytes:
    lines = [f">{header}"] + [sequence[i : i + 60] for i in range(0, len(sequence), 60)]
    return gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0)


@pytest.fixture
def slices(bundled_genome) -> dict[str, bytes]:
    """Two real stretches of hg19 chr20 as UCSC-style per-chromosome files (Ensembl-style header `>20`)."""
    return {
        "chr20.fa.gz": _fasta_gz("20", bundled_genome.bases("chr20", 33_000_000, 33_400_000)),
        "chr20_slice2.fa.gz": _fasta_gz("chr20_slice2", bundled_genome.bases("chr20", 35_000_000, 35_100_000)),
    }


@pytest.fixture
def server(slices):
    md5 = "".join(f"{hashlib.md5(data).hexdigest()}  {name}\n" for name, data in slices.items())
    server = GenomeServer({**slices, "md5sum.txt": md5.encode()})
    yield server
    server.close()


def test_an_interrupted_download_resumes_to_the_right_bytes(server, slices, tmp_path):
    data = slices["chr20.fa.gz"]
    server.cut["chr20.fa.gz"] = len(data) // 2
    with pytest.raises(FetchError, match="connection"):
        fetch_genome(server.url, tmp_path, chromosomes=["20"], progress=False, retries=0)
    assert not (tmp_path / "chr20.fa.gz").exists(), "a half download must never carry the final name"
    assert (tmp_path / "chr20.fa.gz.part").read_bytes() == data[: len(data) // 2]

    fetch_genome(server.url, tmp_path, chromosomes=["20"], progress=False, retries=0)
    assert ("chr20.fa.gz", f"bytes={len(data) // 2}-") in server.requests, "continued with a Range request"
    assert (tmp_path / "chr20.fa.gz").read_bytes() == data
    assert not (tmp_path / "chr20.fa.gz.part").exists()
    (row,) = json.loads((tmp_path / "manifest.json").read_text())["files"]
    assert (row["chromosome"], row["requested"], row["md5_verified"]) == ("chr20", "20", True)
    assert row["md5"] == hashlib.md5(data).hexdigest()


def test_a_dropped_connection_is_resumed_within_one_call(server, slices, tmp_path):
    server.cut["chr20.fa.gz"] = 1000
    fetch_genome(server.url, tmp_path, chromosomes=["chr20"], progress=False, retries=2, timeout=10)
    assert (tmp_path / "chr20.fa.gz").read_bytes() == slices["chr20.fa.gz"]


def test_a_corrupt_file_is_caught_by_md5_in_one_line(server, slices, tmp_path, capsys):
    good = slices["chr20.fa.gz"]
    server.files["chr20.fa.gz"] = good[:5000] + bytes([good[5000] ^ 0xFF]) + good[5001:]
    code = main(["data", "fetch", server.url, "--chromosomes", "chr20", "--out", str(tmp_path), "--quiet"])
    error = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in error
    assert "chr20.fa.gz: md5 mismatch" in error
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "nothing half-written or corrupt is left"


def test_a_verified_file_is_not_downloaded_again(server, tmp_path):
    fetch_genome(server.url, tmp_path, progress=False)
    before = len(server.requests)
    mtime = (tmp_path / "chr20.fa.gz").stat().st_mtime_ns
    fetch_genome(server.url, tmp_path, progress=False)
    assert [name for name, _ in server.requests[before:]] == ["md5sum.txt"]
    assert (tmp_path / "chr20.fa.gz").stat().st_mtime_ns == mtime


def test_a_local_folder_works_like_a_url_and_the_result_reads_as_a_genome(server, slices, bundled_genome, tmp_path):
    fetched = tmp_path / "fetched"
    fetch_genome(server.url, fetched, progress=False)
    copied = tmp_path / "copied"
    fetch_genome(str(fetched), copied, chromosomes=["chr20_slice2"], progress=False)
    assert (copied / "chr20_slice2.fa.gz").read_bytes() == slices["chr20_slice2.fa.gz"]
    genome = read_genome(expand_fasta_paths([fetched]))
    assert [r.chromosome for r in genome.records] == ["chr20", "chr20_slice2"]  # `>20` normalised once
    assert genome.bases("chr20", 100, 160) == bundled_genome.bases("chr20", 33_000_100, 33_000_160)


def test_an_unknown_chromosome_is_named(server, tmp_path):
    with pytest.raises(FetchError, match="chromosome 'chr99'"):
        fetch_genome(server.url, tmp_path, chromosomes=["chr99"], progress=False)
    assert not list(Path(tmp_path).glob("*.part"))


def test_a_file_url_and_a_local_file_are_fetched_and_verified_the_same_way(server, slices, tmp_path):
    fetch_genome(server.url + "chr20_slice2.fa.gz", tmp_path / "from_url", progress=False)
    (row,) = json.loads((tmp_path / "from_url" / "manifest.json").read_text())["files"]
    assert row["md5_verified"] and row["chromosome"] == "chr20_slice2"
    fetch_genome(str(tmp_path / "from_url" / "chr20_slice2.fa.gz"), tmp_path / "from_file", progress=False)
    assert (tmp_path / "from_file" / "chr20_slice2.fa.gz").read_bytes() == slices["chr20_slice2.fa.gz"]
    (copied,) = json.loads((tmp_path / "from_file" / "manifest.json").read_text())["files"]
    assert copied["md5_verified"], "checked against the md5 the first fetch recorded in its manifest"
