"""The data layer: registry, checksums, safe download and extraction, tidy loaders.

Downloads are served from a local HTTP server on 127.0.0.1 with small archives made here;
no test needs the internet.
"""
from __future__ import annotations

import hashlib
import http.server
import io
import threading
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


@pytest.fixture
def server():
    """Serve ``routes`` (path -> bytes) on 127.0.0.1; yields (base_url, routes)."""
    routes: dict[str, bytes] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body = routes.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", routes
    httpd.shutdown()


def register(monkeypatch, url: str, archive: bytes | None, files=FILES, name="toy") -> Dataset:
    ds = Dataset(
        name=name, url=url, files={k: sha(v) for k, v in files.items()},
        archive_hash=None if archive is None else ("sha256", sha(archive)),
        archive_root=name, licence="test licence", citation="test citation", description="toy",
    )
    monkeypatch.setitem(data.REGISTRY, name, ds)
    return ds


def leftovers(base: Path) -> list[str]:
    return sorted(p.name for p in base.iterdir()) if base.exists() else []


def test_download_verify_extract(tmp_path, server, monkeypatch, capsys):
    base_url, routes = server
    archive = make_zip({f"toy/{k}": v for k, v in FILES.items()})
    routes["/toy.zip"] = archive
    register(monkeypatch, base_url + "/toy.zip", archive)
    folder = data.fetch("toy", tmp_path, progress=False)
    assert folder == tmp_path / "toy"
    assert (folder / "sub/b.txt").read_bytes() == b"world\n"
    assert leftovers(tmp_path) == ["toy"]  # no temporary files remain
    assert "test licence" in capsys.readouterr().out
    # second call uses the local copy: the server may go away
    routes.clear()
    assert data.fetch("toy", tmp_path) == folder


def test_archive_checksum_mismatch_deletes_download(tmp_path, server, monkeypatch):
    base_url, routes = server
    archive = make_zip({f"toy/{k}": v for k, v in FILES.items()})
    routes["/toy.zip"] = archive + b"tampered"
    register(monkeypatch, base_url + "/toy.zip", archive)
    with pytest.raises(ChecksumError) as err:
        data.fetch("toy", tmp_path, progress=False)
    msg = str(err.value)
    assert sha(archive) in msg and sha(archive + b"tampered") in msg and "/toy.zip" in msg
    assert leftovers(tmp_path) == []


def test_extracted_member_mismatch_keeps_nothing(tmp_path, server, monkeypatch):
    base_url, routes = server
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
    base_url, routes = server
    for evil in ["../evil.txt", "/abs/evil.txt", "toy/../../evil.txt"]:
        archive = make_zip({**{f"toy/{k}": v for k, v in FILES.items()}, evil: b"x"})
        routes["/toy.zip"] = archive
        register(monkeypatch, base_url + "/toy.zip", archive)
        target = tmp_path / "cache"
        with pytest.raises(DataError, match="refusing to extract"):
            data.fetch("toy", target, progress=False)
        assert leftovers(target) == []
        assert not (tmp_path / "evil.txt").exists()


def test_no_network_and_no_local_copy_says_what_to_do(tmp_path, monkeypatch):
    register(monkeypatch, "http://127.0.0.1:9/toy.zip", None)  # port 9: connection refused
    with pytest.raises(DataError) as err:
        data.fetch("toy", tmp_path, progress=False)
    msg = str(err.value)
    assert str(tmp_path / "toy" / "a.txt") in msg and str(tmp_path / "toy" / "sub/b.txt") in msg
    assert "RECSYS_DATA_DIR" in msg and "http://127.0.0.1:9/toy.zip" in msg
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


def register_loose(monkeypatch, url: str, name="loose") -> Dataset:
    ds = Dataset(name=name, url=url, files={k: sha(v) for k, v in FILES.items()}, archive_hash=None,
                 archive_root=None, licence="l", citation="c", description="loose files")
    monkeypatch.setitem(data.REGISTRY, name, ds)
    return ds


def test_loose_files_download_and_verify(tmp_path, server, monkeypatch):
    base_url, routes = server
    for rel, content in FILES.items():
        routes[f"/repo/{rel}"] = content
    register_loose(monkeypatch, base_url + "/repo/")
    folder = data.fetch("loose", tmp_path, progress=False)
    assert (folder / "sub/b.txt").read_bytes() == FILES["sub/b.txt"]
    assert leftovers(tmp_path) == ["loose"]


def test_loose_files_mismatch_or_missing_keeps_nothing(tmp_path, server, monkeypatch):
    base_url, routes = server
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
