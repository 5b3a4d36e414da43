"""The data layer: registry, checksums, safe download and extraction, tidy loaders.

Downloads are served from a local HTTP server on 127.0.0.1 with small archives made here;
no test needs the internet.
"""
from __future__ import annotations

import hashlib
import http.server
import io
import shutil
import socket
import ssl
import threading
import time
import urllib.error
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import data
from helpers.data import ChecksumError, DataError, Dataset

FILES = {"a.txt": b"hello\n", "sub/b.txt": b"world\n"}


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def make_zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, content in members.items():
            zf.writestr(name, content)
    return buf.getvalue()


@pytest.fixture(autouse=True)
def fast_downloads(monkeypatch):
    """Short time-outs, two attempts, no back-off and no site mirror, so tests stay fast."""
    monkeypatch.setattr(data, "TIMEOUT", 2.0)
    monkeypatch.setattr(data, "ATTEMPTS", 2)
    monkeypatch.setattr(data, "BACKOFF", 0.0)
    monkeypatch.delenv("RECSYS_DATA_MIRROR", raising=False)


@pytest.fixture
def server():
    """Serve ``routes`` on 127.0.0.1; yields (base_url, routes, log).

    A route's value is the body (bytes), an HTTP status code (int), a list of those served
    one per request (the last one repeats), or ``("short", body)`` to announce
    ``len(body) + 100`` bytes and close after ``body``. ``log`` lists the requested paths.
    """
    routes: dict[str, object] = {}
    log: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            log.append(self.path)
            body = routes.get(self.path, 404)
            if isinstance(body, list):
                body = body.pop(0) if len(body) > 1 else body[0]
            if isinstance(body, int):
                self.send_error(body)
                return
            announced = None
            if isinstance(body, tuple):
                body = body[1]
                announced = len(body) + 100
            self.send_response(200)
            self.send_header("Content-Length", str(announced or len(body)))
            self.end_headers()
            self.wfile.write(body)
            if announced:
                self.close_connection = True

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", routes, log
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def refused_url():
    """A URL on 127.0.0.1 whose port is bound but not listening: connections are refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


@pytest.fixture
def silent_url():
    """A URL on 127.0.0.1 that accepts connections (kernel backlog) and never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


def register(monkeypatch, url: str, archive: bytes | None, files=FILES, name="toy",
             mirrors=(), archive_root=None) -> Dataset:
    ds = Dataset(
        name=name, url=url, files={k: sha(v) for k, v in files.items()},
        archive_hash=None if archive is None else ("sha256", sha(archive)),
        archive_root=name if archive_root is None else archive_root, licence="test licence",
        citation="test citation", description="toy", mirrors=tuple(mirrors),
    )
    monkeypatch.setitem(data.REGISTRY, name, ds)
    return ds


def leftovers(base: Path) -> list[str]:
    return sorted(p.name for p in base.iterdir()) if base.exists() else []


def test_download_verify_extract(tmp_path, server, monkeypatch, capsys):
    base_url, routes, _ = server
    archive = make_zip({f"toy/{k}": v for k, v in FILES.items()})
    routes["/toy.zip"] = archive
    register(monkeypatch, base_url + "/toy.zip", archive)
    folder = data.fetch("toy", tmp_path, progress=False)
    assert folder == tmp_path / "toy"
    assert (folder / "sub/b.txt").read_bytes() == b"world\n"
    assert leftovers(tmp_path) == ["toy"]  # no temporary files remain
    out = capsys.readouterr().out
    assert "test licence" in out and "test citation" in out and base_url + "/toy.zip" in out
    # second call uses the local copy: the server may go away, and nothing is printed
    routes.clear()
    assert data.fetch("toy", tmp_path) == folder
    assert capsys.readouterr().out == ""


def test_archive_checksum_mismatch_deletes_download(tmp_path, server, monkeypatch):
    base_url, routes, _ = server
    archive = make_zip({f"toy/{k}": v for k, v in FILES.items()})
    routes["/toy.zip"] = archive + b"tampered"
    register(monkeypatch, base_url + "/toy.zip", archive)
    with pytest.raises(ChecksumError) as err:
        data.fetch("toy", tmp_path, progress=False)
    msg = str(err.value)
    assert sha(archive) in msg and sha(archive + b"tampered") in msg and "/toy.zip" in msg
    assert leftovers(tmp_path) == []


def test_extracted_member_mismatch_keeps_nothing(tmp_path, server, monkeypatch):
    base_url, routes, _ = server
    bad = dict(FILES, **{"a.txt": b"HELLO\n"})
    archive = make_zip({f"toy/{k}": v for k, v in bad.items()})
    routes["/toy.zip"] = archive
    register(monkeypatch, base_url + "/toy.zip", None)  # no archive hash: files are checked
    with pytest.raises(ChecksumError, match="a.txt") as err:
        data.fetch("toy", tmp_path, progress=False)
    assert sha(FILES["a.txt"]) in str(err.value) and sha(b"HELLO\n") in str(err.value)
    assert leftovers(tmp_path) == []


def test_modified_local_file_is_reported(tmp_path, monkeypatch):
    register(monkeypatch, "http://127.0.0.1:9/none.zip", None)
    folder = tmp_path / "toy"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_bytes(b"changed\n")
    (folder / "sub/b.txt").write_bytes(FILES["sub/b.txt"])
    with pytest.raises(ChecksumError) as err:
        data.fetch("toy", tmp_path)
    msg = str(err.value)
    assert str(folder / "a.txt") in msg and sha(FILES["a.txt"]) in msg and sha(b"changed\n") in msg


def test_zip_slip_is_refused(tmp_path, server, monkeypatch):
    base_url, routes, _ = server
    for evil in ["../evil.txt", "/abs/evil.txt", "toy/../../evil.txt"]:
        archive = make_zip({**{f"toy/{k}": v for k, v in FILES.items()}, evil: b"x"})
        routes["/toy.zip"] = archive
        register(monkeypatch, base_url + "/toy.zip", archive)
        target = tmp_path / "cache"
        with pytest.raises(DataError, match="refusing to extract"):
            data.fetch("toy", target, progress=False)
        assert leftovers(target) == []
        assert not (tmp_path / "evil.txt").exists()


def test_no_network_and_no_local_copy_says_what_to_do(tmp_path, monkeypatch, refused_url):
    register(monkeypatch, refused_url + "/toy.zip", None)
    with pytest.raises(DataError) as err:
        data.fetch("toy", tmp_path, progress=False)
    msg = str(err.value)
    assert str(tmp_path / "toy" / "a.txt") in msg and str(tmp_path / "toy" / "sub/b.txt") in msg
    assert "RECSYS_DATA_DIR" in msg and refused_url + "/toy.zip" in msg
    assert leftovers(tmp_path) == []


def test_unknown_dataset_lists_known():
    with pytest.raises(DataError, match="ml-100k.*ml-latest-small"):
        data.fetch("ml-1m")
    with pytest.raises(DataError, match="known datasets"):
        data.load_movielens("netflix")


def test_lookup_order(tmp_path, monkeypatch):
    monkeypatch.setenv("RECSYS_DATA_DIR", str(tmp_path / "env"))
    assert data.resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert data.resolve_data_dir() == tmp_path / "env"
    monkeypatch.delenv("RECSYS_DATA_DIR")
    assert data.resolve_data_dir() == data.REPO_DATA_DIR


def test_registry_matches_shared_manifest(real_data_dir):
    manifest = real_data_dir / "MANIFEST.tsv"
    if not manifest.is_file():
        pytest.skip("no MANIFEST.tsv beside the data")
    m = pd.read_csv(manifest, sep="\t").set_index("path")["sha256"]
    for ds in data.REGISTRY.values():
        for rel, digest in ds.files.items():
            assert m[f"{ds.name}/{rel}"] == digest, rel


def test_load_ml100k(real_data_dir):
    ml = data.load_movielens("ml-100k", real_data_dir)
    r = ml.ratings
    assert r.shape == (100_000, 4)
    assert r.dtypes.to_dict() == {"user_id": np.int32, "item_id": np.int32, "rating": np.float32,
                                  "timestamp": np.dtype("datetime64[s]")}
    assert r["user_id"].nunique() == 943 and r["item_id"].nunique() == 1682
    assert set(r["rating"].unique()) == {1, 2, 3, 4, 5}
    assert r["timestamp"].min().year == 1997 and r["timestamp"].max().year == 1998
    assert r.iloc[0].tolist()[:3] == [196, 242, 3.0]  # file order kept
    assert ml.items.shape[0] == 1682 and ml.items.loc[1, "title"] == "Toy Story (1995)"
    assert [c for c in ml.items.columns if c in data.GENRES_ML100K] == data.GENRES_ML100K
    assert ml.items.loc[1, ["Animation", "Children's", "Comedy"]].tolist() == [1, 1, 1]
    assert ml.users.shape == (943, 4) and ml.users.loc[1, "age"] == 24
    assert str(ml.users["gender"].dtype) == "category"


def test_load_ml_latest_small(real_data_dir):
    ml = data.load_movielens("ml-latest-small", real_data_dir)
    assert ml.ratings.shape == (100_836, 4)
    assert ml.ratings["user_id"].nunique() == 610
    assert ml.movies.shape[0] == 9742 and ml.movies.loc[1, "year"] == 1995
    assert "Animation" in ml.movies.loc[1, "genres"]
    assert ml.tags.shape[0] == 3683 and ml.links.shape[0] == 9742


def test_ml100k_folds_partition_the_data(real_data_dir):
    tests = []
    for k in range(1, 6):
        base, test = data.load_ml100k_fold(k, real_data_dir)
        assert len(base) == 80_000 and len(test) == 20_000
        assert set(test["user_id"]) <= set(base["user_id"])
        tests.append(test)
    allt = pd.concat(tests)
    assert not allt.duplicated(["user_id", "item_id"]).any() and len(allt) == 100_000
    with pytest.raises(ValueError, match="1-5"):
        data.load_ml100k_fold(6, real_data_dir)


def register_loose(monkeypatch, url: str, name="loose", mirrors=()) -> Dataset:
    ds = Dataset(name=name, url=url, files={k: sha(v) for k, v in FILES.items()}, archive_hash=None,
                 archive_root=None, licence="l", citation="c", description="loose files",
                 mirrors=tuple(mirrors))
    monkeypatch.setitem(data.REGISTRY, name, ds)
    return ds


def test_loose_files_download_and_verify(tmp_path, server, monkeypatch):
    base_url, routes, _ = server
    for rel, content in FILES.items():
        routes[f"/repo/{rel}"] = content
    register_loose(monkeypatch, base_url + "/repo/")
    folder = data.fetch("loose", tmp_path, progress=False)
    assert (folder / "sub/b.txt").read_bytes() == FILES["sub/b.txt"]
    assert leftovers(tmp_path) == ["loose"]


def test_loose_files_mismatch_or_missing_keeps_nothing(tmp_path, server, monkeypatch):
    base_url, routes, _ = server
    routes["/repo/a.txt"] = FILES["a.txt"]
    routes["/repo/sub/b.txt"] = b"tampered"
    register_loose(monkeypatch, base_url + "/repo/")
    with pytest.raises(ChecksumError, match="sub/b.txt"):
        data.fetch("loose", tmp_path, progress=False)
    assert leftovers(tmp_path) == []
    del routes["/repo/sub/b.txt"]  # 404
    with pytest.raises(DataError, match="put these files in place"):
        data.fetch("loose", tmp_path, progress=False)
    assert leftovers(tmp_path) == []


def test_load_open_bandit(real_data_dir):
    if not (real_data_dir / "open-bandit-dataset-small").is_dir():
        pytest.skip("Open Bandit sample not beside the data")
    log, items = data.load_open_bandit("random", "men", real_data_dir)
    assert len(log) == 10_000 and set(log["position"].unique()) == {1, 2, 3}
    assert set(log["click"].unique()) <= {0, 1} and 0 < log["click"].mean() < 0.02
    assert log["item_id"].isin(items.index).all()
    with pytest.raises(ValueError, match="policy"):
        data.load_open_bandit("greedy", "men", real_data_dir)



# --------------------------------------------------------------------------- several sources
def toy_archive(files=FILES, root="toy") -> bytes:
    return make_zip({f"{root}/{k}" if root else k: v for k, v in files.items()})


def test_refused_first_source_falls_back_to_mirror(tmp_path, server, monkeypatch, refused_url, capsys):
    base_url, routes, log = server
    routes["/mirror/toy.zip"] = toy_archive()
    register(monkeypatch, refused_url + "/toy.zip", None, mirrors=[base_url + "/mirror/toy.zip"])
    folder = data.fetch("toy", tmp_path, progress=False)
    assert (folder / "a.txt").read_bytes() == FILES["a.txt"]
    assert leftovers(tmp_path) == ["toy"]
    assert "from " + base_url + "/mirror/toy.zip" in capsys.readouterr().out


def test_silent_first_source_times_out_then_mirror(tmp_path, server, monkeypatch, silent_url):
    base_url, routes, _ = server
    routes["/mirror/toy.zip"] = toy_archive()
    register(monkeypatch, silent_url + "/toy.zip", None, mirrors=[base_url + "/mirror/toy.zip"])
    t0 = time.perf_counter()
    folder = data.fetch("toy", tmp_path, progress=False, timeout=0.3, attempts=2)
    assert time.perf_counter() - t0 < 5  # two 0.3 s time-outs, then the mirror
    assert (folder / "sub/b.txt").read_bytes() == FILES["sub/b.txt"]
    assert leftovers(tmp_path) == ["toy"]


def test_404_moves_on_at_once_and_5xx_is_retried(tmp_path, server, monkeypatch):
    base_url, routes, log = server
    routes["/flaky/toy.zip"] = [503, toy_archive()]  # fails once, then works
    register(monkeypatch, base_url + "/gone/toy.zip", None, mirrors=[base_url + "/flaky/toy.zip"])
    data.fetch("toy", tmp_path, progress=False, attempts=3)
    assert log == ["/gone/toy.zip", "/flaky/toy.zip", "/flaky/toy.zip"]  # 404 not retried


def test_corrupted_or_truncated_archive_then_mirror(tmp_path, server, monkeypatch):
    base_url, routes, log = server
    good = toy_archive()
    routes["/bad/toy.zip"] = good[: len(good) // 2]            # corrupted: not a zip
    routes["/short/toy.zip"] = ("short", good)                  # connection closes early
    routes["/mirror/toy.zip"] = good
    register(monkeypatch, base_url + "/bad/toy.zip", None,
             mirrors=[base_url + "/short/toy.zip", base_url + "/mirror/toy.zip"])
    folder = data.fetch("toy", tmp_path, progress=False)
    assert (folder / "a.txt").read_bytes() == FILES["a.txt"]
    assert leftovers(tmp_path) == ["toy"]
    assert log.count("/short/toy.zip") == 2  # an incomplete body is transient: retried


def test_mirror_serving_different_bytes_is_refused(tmp_path, server, monkeypatch, refused_url):
    base_url, routes, _ = server
    other = dict(FILES, **{"a.txt": b"HELLO\n"})
    routes["/evil/toy.zip"] = toy_archive(other)
    register(monkeypatch, refused_url + "/toy.zip", None, mirrors=[base_url + "/evil/toy.zip"])
    with pytest.raises(DataError) as err:
        data.fetch("toy", tmp_path, progress=False)
    msg = str(err.value)
    assert "toy/a.txt failed verification" in msg and sha(b"HELLO\n") in msg
    assert leftovers(tmp_path) == []
    # with a published archive digest the different archive is refused before extraction
    register(monkeypatch, refused_url + "/toy.zip", toy_archive(), mirrors=[base_url + "/evil/toy.zip"])
    with pytest.raises(DataError, match="archive failed verification: expected sha256"):
        data.fetch("toy", tmp_path, progress=False)
    assert leftovers(tmp_path) == []


def test_every_source_fails_lists_each_url_and_reason(tmp_path, server, monkeypatch, refused_url,
                                                      silent_url):
    base_url, routes, _ = server
    routes["/corrupt/toy.zip"] = b"this is not a zip archive"
    urls = [refused_url + "/toy.zip", base_url + "/missing/toy.zip", silent_url + "/toy.zip",
            base_url + "/corrupt/toy.zip"]
    register(monkeypatch, urls[0], None, mirrors=urls[1:])
    with pytest.raises(DataError) as err:
        data.fetch("toy", tmp_path, progress=False, timeout=0.3, attempts=1)
    msg = str(err.value)
    lines = msg.splitlines()
    tried = [line for line in lines if line.startswith("  ") and "://" in line]
    assert [t.split()[1] for t in tried] == urls  # in order, numbered
    assert "connection refused" in tried[0] and "HTTP 404" in tried[1]
    assert "timed out" in tried[2] and "not a valid zip" in tried[3]
    assert "official" in tried[0] and "mirror" in tried[1]
    # then the exact files to place, after the list of URLs
    i_files = lines.index(f"  {tmp_path / 'toy' / 'a.txt'}")
    assert i_files > lines.index(tried[-1]) and f"  {tmp_path / 'toy' / 'sub/b.txt'}" in lines
    assert "nothing was written" in msg and "RECSYS_DATA_MIRROR" in msg
    assert leftovers(tmp_path) == []


def test_site_mirror_is_tried_first_with_documented_layout(tmp_path, server, monkeypatch):
    base_url, routes, log = server
    routes["/site/toy/toy.zip"] = toy_archive()
    routes["/official/toy.zip"] = toy_archive()
    register(monkeypatch, base_url + "/official/toy.zip", None)
    monkeypatch.setenv("RECSYS_DATA_MIRROR", base_url + "/site")  # no trailing slash needed
    assert data.sources("toy") == [(base_url + "/site/toy/toy.zip", "site mirror"),
                                   (base_url + "/official/toy.zip", "official")]
    data.fetch("toy", tmp_path, progress=False)
    assert log == ["/site/toy/toy.zip"]
    # loose files: <mirror>/<name>/<path>
    for rel, content in FILES.items():
        routes[f"/site/loose/{rel}"] = content
    register_loose(monkeypatch, base_url + "/official/")
    data.fetch("loose", tmp_path, progress=False)
    assert log[1:] == ["/site/loose/a.txt", "/site/loose/sub/b.txt"]


def test_site_mirror_with_wrong_bytes_falls_back_to_official(tmp_path, server, monkeypatch):
    base_url, routes, log = server
    routes["/site/toy/toy.zip"] = toy_archive(dict(FILES, **{"a.txt": b"local edit\n"}))
    routes["/official/toy.zip"] = toy_archive()
    register(monkeypatch, base_url + "/official/toy.zip", None)
    monkeypatch.setenv("RECSYS_DATA_MIRROR", base_url + "/site/")
    folder = data.fetch("toy", tmp_path, progress=False)
    assert (folder / "a.txt").read_bytes() == FILES["a.txt"]
    assert log == ["/site/toy/toy.zip", "/official/toy.zip"]


def test_site_mirror_must_be_a_url(tmp_path, monkeypatch, refused_url):
    register(monkeypatch, refused_url + "/toy.zip", None)
    monkeypatch.setenv("RECSYS_DATA_MIRROR", "/some/folder")
    with pytest.raises(DataError, match="expected a base URL starting with http://"):
        data.fetch("toy", tmp_path, progress=False)
    assert leftovers(tmp_path) == []


def test_site_mirror_as_file_url(tmp_path, monkeypatch, refused_url):
    site = tmp_path / "site"
    (site / "toy").mkdir(parents=True)
    (site / "toy" / "toy.zip").write_bytes(toy_archive())
    register(monkeypatch, refused_url + "/toy.zip", None)
    monkeypatch.setenv("RECSYS_DATA_MIRROR", site.as_uri())
    folder = data.fetch("toy", tmp_path / "cache", progress=False)
    assert (folder / "a.txt").read_bytes() == FILES["a.txt"]


def test_archive_with_files_at_top_level(tmp_path, server, monkeypatch):
    base_url, routes, _ = server
    routes["/flat.zip"] = toy_archive(root="")
    register(monkeypatch, base_url + "/flat.zip", None, archive_root="")
    folder = data.fetch("toy", tmp_path, progress=False)
    assert (folder / "sub/b.txt").read_bytes() == FILES["sub/b.txt"]
    assert leftovers(tmp_path) == ["toy"]


def test_loose_files_fall_back_file_by_file(tmp_path, server, monkeypatch):
    base_url, routes, log = server
    routes["/repo/a.txt"] = FILES["a.txt"]          # official has a.txt but not sub/b.txt
    routes["/cdn/sub/b.txt"] = FILES["sub/b.txt"]
    register_loose(monkeypatch, base_url + "/repo/", mirrors=[base_url + "/cdn/"])
    folder = data.fetch("loose", tmp_path, progress=False)
    assert (folder / "sub/b.txt").read_bytes() == FILES["sub/b.txt"]
    assert log == ["/repo/a.txt", "/repo/sub/b.txt", "/cdn/sub/b.txt"]
    assert leftovers(tmp_path) == ["loose"]


def test_loose_files_dead_source_is_not_retried_for_each_file(tmp_path, server, monkeypatch,
                                                              silent_url):
    base_url, routes, _ = server
    for rel, content in FILES.items():
        routes[f"/cdn/{rel}"] = content
    register_loose(monkeypatch, silent_url + "/", mirrors=[base_url + "/cdn/"])
    t0 = time.perf_counter()
    data.fetch("loose", tmp_path, progress=False, timeout=0.3, attempts=1)
    assert time.perf_counter() - t0 < 2  # one time-out, not one per file


def test_expired_certificate_is_not_retried(tmp_path, server, monkeypatch):
    """The GroupLens case (28 Aug 2026): TLS verification fails; go to the mirror at once."""
    base_url, routes, _ = server
    routes["/mirror/toy.zip"] = toy_archive()
    official = "https://expired.invalid/toy.zip"
    register(monkeypatch, official, None, mirrors=[base_url + "/mirror/toy.zip"])
    real, calls = data._download, []

    def fake(url, dest, **kw):
        calls.append(url)
        if url == official:
            raise urllib.error.URLError(ssl.SSLCertVerificationError(
                1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: certificate has expired"))
        return real(url, dest, **kw)

    monkeypatch.setattr(data, "_download", fake)
    data.fetch("toy", tmp_path, progress=False, attempts=3)
    assert calls == [official, base_url + "/mirror/toy.zip"]
    routes.clear()
    shutil.rmtree(tmp_path / "toy")
    with pytest.raises(DataError, match=r"expired.invalid/toy.zip \(official\): TLS certificate "
                                        r"verification failed .*certificate has expired"):
        data.fetch("toy", tmp_path, progress=False, attempts=3)


def test_fetch_rejects_bad_settings(tmp_path):
    with pytest.raises(ValueError, match="timeout"):
        data.fetch("ml-100k", tmp_path, timeout=0)
    with pytest.raises(ValueError, match="attempts"):
        data.fetch("ml-100k", tmp_path, attempts=0)


def test_registry_sources_are_https_and_mirrors_documented():
    for ds in data.REGISTRY.values():
        for url in (ds.url, *ds.mirrors):
            assert url.startswith("https://"), url
            if not ds.is_archive:
                assert url.endswith("/"), url
        assert ds.mirror_evidence, ds.name  # evidence, or why there is no mirror
        assert ds.licence and ds.citation and ds.description
    assert data.REGISTRY["ml-100k"].mirrors[0].startswith(
        "https://huggingface.co/datasets/Recommenders/MovieLens/")
