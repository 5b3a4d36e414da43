"""Loaders for the datasets of the later chapters: HetRec Last.fm and the DKN Bing News sample.

Each loader is tested on small synthetic files written here (registered with their own
sha256, so the same checksum gate applies) and on the real copies when ``RECSYS_DATA_DIR``
points at them (skipped otherwise).
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import data
from helpers.data import DataError


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def install(monkeypatch, base: Path, name: str, files: dict[str, bytes]) -> None:
    """Write ``files`` under ``base/name`` and register them (only them) for ``name``."""
    for rel, content in files.items():
        path = base / name / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    ds = dataclasses.replace(data.REGISTRY[name], files={k: sha(v) for k, v in files.items()})
    monkeypatch.setitem(data.REGISTRY, name, ds)


@pytest.fixture
def real_dir() -> Path:
    env = os.environ.get("RECSYS_DATA_DIR")
    if not env:
        pytest.skip("RECSYS_DATA_DIR is not set")
    return Path(env)


def crlf(text: str, encoding: str = "utf-8") -> bytes:
    return text.replace("\n", "\r\n").encode(encoding)


LASTFM = {
    "artists.dat": ("id\tname\turl\tpictureURL\n"
                    "1\tMALICE MIZER\thttp://www.last.fm/music/MALICE+MIZER\thttp://x/1.jpg\n"
                    '7\t"Weird Al" Yankovic\thttp://www.last.fm/music/Weird\t\n'
                    "9\tSigur Rós\thttp://www.last.fm/music/Sigur+R%C3%B3s\thttp://x/9.jpg\n"
                    ).encode("utf-8"),
    "readme.txt": "Iv\xe1n Cantador\n".encode("latin-1"),
    "tags.dat": crlf("tagID\ttagValue\n1\tmetal\n7982\tfu\xdfball\n11213\tdie \xc4rzte\n", "latin-1"),
    "user_artists.dat": crlf("userID\tartistID\tweight\n2\t1\t13883\n2\t9\t5\n3\t7\t352698\n"),
    # 2-3 in both directions, 2-4 in one direction only
    "user_friends.dat": crlf("userID\tfriendID\n2\t3\n3\t2\n4\t2\n"),
    "user_taggedartists.dat": crlf("userID\tartistID\ttagID\tday\tmonth\tyear\n"
                                   "2\t1\t1\t1\t4\t2009\n3\t99\t7982\t1\t9\t1956\n"),
}


def test_load_lastfm_synthetic(tmp_path, monkeypatch, capsys):
    install(monkeypatch, tmp_path, "hetrec2011-lastfm-2k", LASTFM)
    lf = data.load_lastfm(tmp_path)
    assert capsys.readouterr().out == ""  # loaded from a folder: no licence banner
    ua = lf.user_artists
    assert ua.dtypes.to_dict() == {"user_id": np.int32, "artist_id": np.int32, "weight": np.int32}
    assert ua.to_numpy().tolist() == [[2, 1, 13883], [2, 9, 5], [3, 7, 352698]]
    assert lf.friends.to_numpy().tolist() == [[2, 3], [2, 4]]  # undirected, user_id < friend_id
    assert lf.friends.dtypes.to_dict() == {"user_id": np.int32, "friend_id": np.int32}
    a = lf.artists
    assert a.index.name == "artist_id" and a.index.dtype == np.int32
    assert list(a.columns) == ["name", "url", "picture_url"]
    assert a.loc[7, "name"] == '"Weird Al" Yankovic'  # quotes are data
    assert a.loc[9, "name"] == "Sigur Rós" and pd.isna(a.loc[7, "picture_url"])
    t = lf.tags
    assert t.index.name == "tag_id" and t.index.dtype == np.int32
    assert t.loc[7982, "tag"] == "fußball" and t.loc[11213, "tag"] == "die Ärzte"  # Latin-1, no '\r'
    uta = lf.user_tagged_artists
    assert list(uta.columns) == ["user_id", "artist_id", "tag_id", "year", "month", "day"]
    assert uta.dtypes.to_dict() == {"user_id": np.int32, "artist_id": np.int32, "tag_id": np.int32,
                                    "year": np.int16, "month": np.int8, "day": np.int8}
    assert uta.iloc[1].tolist() == [3, 99, 7982, 1956, 9, 1]


def test_load_lastfm_bad_value_names_file_and_row(tmp_path, monkeypatch):
    bad = dict(LASTFM, **{"user_artists.dat": crlf("userID\tartistID\tweight\n2\t1\tmany\n")})
    install(monkeypatch, tmp_path, "hetrec2011-lastfm-2k", bad)
    with pytest.raises(DataError, match=r"user_artists.dat: column 'weight' must hold integers; row 2"):
        data.load_lastfm(tmp_path)


def test_load_lastfm_real(real_dir):
    if not (real_dir / "hetrec2011-lastfm-2k").is_dir():
        pytest.skip("HetRec Last.fm not beside the data")
    lf = data.load_lastfm(real_dir)
    ua = lf.user_artists
    assert len(ua) == 92_834 and ua["user_id"].nunique() == 1_892 and ua["artist_id"].nunique() == 17_632
    assert ua.iloc[0].tolist() == [2, 51, 13883] and ua["weight"].min() >= 1
    assert not ua.duplicated(["user_id", "artist_id"]).any()
    assert len(lf.friends) == 12_717 and (lf.friends["user_id"] < lf.friends["friend_id"]).all()
    assert len(lf.artists) == 17_632 and lf.artists.loc[707, "name"] == "Metallica"
    assert ua["artist_id"].isin(lf.artists.index).all()
    assert len(lf.tags) == 11_946 and lf.tags.loc[7982, "tag"] == "fußball"
    assert not lf.tags["tag"].str.contains("\r").any()
    uta = lf.user_tagged_artists
    assert len(uta) == 186_479 and uta["tag_id"].isin(lf.tags.index).all()
    assert uta["month"].between(1, 12).all()


DKN_TRAIN = ("0\ttautog bite coming strong\t0\t36136:Tautog\n"
             "0\twatch tom cruise james corden\t1\t3410:Tom Cruise;99:James Corden\n"
             "17\tratio 3:2 explained\t1\t5:Ratio 3:2\n")
DKN_TEST = "19800\tvan plows pedestrians near mosque\t0\t33014:Finsbury Park Mosque\n"


def dkn_files(train: str = DKN_TRAIN, test: str = DKN_TEST) -> dict[str, bytes]:
    return {"LICENSE": b"MIT License\n", "data/news/raw_train.txt": crlf(train),
            "data/news/raw_test.txt": crlf(test)}


def test_load_dkn_news_synthetic(tmp_path, monkeypatch):
    install(monkeypatch, tmp_path, "dkn-bing-news-sample", dkn_files())
    train, test = data.load_dkn_news(tmp_path)
    assert list(train.columns) == ["user_id", "title", "label", "entities"]
    assert train["user_id"].dtype == np.int32 and train["label"].dtype == np.int8
    assert pd.api.types.is_string_dtype(train["title"]) and train["entities"].dtype == object
    assert train["user_id"].tolist() == [0, 0, 17] and train["label"].tolist() == [0, 1, 1]
    assert train.loc[1, "title"].split(" ") == ["watch", "tom", "cruise", "james", "corden"]
    assert train.loc[1, "entities"] == [(3410, "Tom Cruise"), (99, "James Corden")]
    assert train.loc[2, "entities"] == [(5, "Ratio 3:2")]  # split on the first colon only
    assert test.iloc[0]["user_id"] == 19800 and test.iloc[0]["entities"][0][1] == "Finsbury Park Mosque"
    assert not train["title"].str.contains("\r").any()


@pytest.mark.parametrize("line, what", [
    ("0\tno label here\t36136:Tautog\n", "expected 4 tab-separated fields"),
    ("0\ttitle\t2\t1:X\n", "0/1 label"),
    ("x\ttitle\t1\t1:X\n", "integer user id"),
    ("0\ttitle\t1\tX\n", "is not 'id:name'"),
])
def test_load_dkn_news_bad_lines(tmp_path, monkeypatch, line, what):
    install(monkeypatch, tmp_path, "dkn-bing-news-sample", dkn_files(train=DKN_TRAIN + line))
    with pytest.raises(DataError, match=rf"raw_train.txt, line 4: .*{what}"):
        data.load_dkn_news(tmp_path)


def test_load_dkn_news_real(real_dir):
    if not (real_dir / "dkn-bing-news-sample").is_dir():
        pytest.skip("DKN sample not beside the data")
    train, test = data.load_dkn_news(real_dir)
    assert len(train) == 10_401 and len(test) == 462
    assert train["user_id"].nunique() == 469
    assert set(train["label"].unique()) == {0, 1} and 0.5 < train["label"].mean() < 0.7
    assert train.iloc[0]["title"] == "tautog bite coming strong"
    assert train.iloc[0]["entities"] == [(36136, "Tautog")]
    assert (train["entities"].map(len) >= 1).all()
    assert not train["title"].str.contains("[^a-z0-9 ]").any()  # lower-case words, single spaces
