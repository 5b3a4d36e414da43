"""Real datasets, safely: a registry, downloads that survive a dead server, tidy loaders.

Where the files come from (first match wins):

1. the ``data_dir`` argument of a loader;
2. the ``RECSYS_DATA_DIR`` environment variable;
3. ``data/`` in the repository (the git-ignored download cache).

A dataset lives in ``<data folder>/<name>/`` exactly as its official source lays it out
(``data/ml-100k/u.data`` ...). A folder that already holds the files is used as is, after
every file the book reads is checked against its registered sha256; nothing is printed.

Otherwise the dataset is downloaded. Every dataset has an ordered list of sources
(:func:`sources`): the site mirror named by ``RECSYS_DATA_MIRROR`` first when it is set, then
the official URL, then public mirrors that are documented to serve the same bytes. Each
source is tried with a timeout (:data:`TIMEOUT` seconds per connection and per read) and up to
:data:`ATTEMPTS` attempts, waiting :data:`BACKOFF` x 2^(k-1) seconds before attempt k+1; only
transient failures are retried (time-outs, refused or reset connections, HTTP 5xx and 429),
while a 404, an expired TLS certificate or a wrong checksum moves on to the next source at
once. Every source passes the same gate: the archive's published digest when there is one,
members that stay inside the target folder (no absolute paths, no ``..``), and the sha256
of every file the book reads. A source that serves different bytes is refused, so a mirror
can make a download possible but can never change the data.

Nothing is ever half-written: downloads go to temporary files and folders beside the target
and are renamed into place only after every check passed; whatever fails is deleted. When
every source fails, :class:`DataError` lists each URL tried with its reason, then the exact
files to put where. The licence and the citation are printed once, when a dataset is
actually downloaded (not when it is loaded from a folder); ``book/datasets.md`` lists them.

``RECSYS_DATA_MIRROR`` is a base URL (``http://``, ``https://`` or ``file://``) under which a
site keeps ``<name>/<archive file name>`` for a dataset published as an archive (for example
``<mirror>/ml-100k/ml-100k.zip``, the official archive unchanged) and ``<name>/<path>`` for
each file of a dataset published as loose files (for example
``<mirror>/dkn-bing-news-sample/data/news/raw_train.txt``). It is tried first because a site
sets it for a copy that is nearer, or reachable where the internet is not; the checksum gate
is the same, so it cannot substitute other data.
"""
from __future__ import annotations

import csv
import hashlib
import http.client
import os
import shutil
import socket
import ssl
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

REPO_DATA_DIR = Path(__file__).resolve().parent.parent / "data"
ENV_VAR = "RECSYS_DATA_DIR"
MIRROR_ENV_VAR = "RECSYS_DATA_MIRROR"

#: Seconds to wait for a connection and for each read before an attempt counts as timed out.
TIMEOUT = 30.0
#: Attempts per source; only transient failures (time-out, connection error, HTTP 5xx/429) are retried.
ATTEMPTS = 3
#: Seconds before the second attempt; doubled before each further one.
BACKOFF = 1.0

MOVIELENS_CITATION = (
    "F. M. Harper and J. A. Konstan. The MovieLens Datasets: History and Context. "
    "ACM Transactions on Interactive Intelligent Systems 5(4), 2015. doi:10.1145/2827872"
)


class DataError(RuntimeError):
    """A dataset is missing, corrupted or unsafe; the message says what to do."""


class ChecksumError(DataError):
    """A file's digest differs from the registered one."""


@dataclass(frozen=True)
class Dataset:
    """One registry entry.

    ``files`` maps every path (relative to the dataset folder) that the book reads to its
    sha256. ``archive_hash`` is ``(algorithm, hexdigest)`` for the official archive when
    one is published (``None`` otherwise: the extracted files are still verified).
    ``archive_root`` is the folder inside the archive that holds the files (``""``: the
    archive's top level). A dataset published as loose files rather than an archive has
    ``archive_root=None``: then ``url`` is a base URL and each file is downloaded from
    ``url + path``.

    ``url`` is the official source; ``mirrors`` are further sources of the very same bytes
    (archive URLs, or base URLs for loose files), tried in order after it, and
    ``mirror_evidence`` says why each is believed identical. The checksum gate applies to
    every source alike, so a wrong mirror is refused, never used.
    """

    name: str
    url: str
    files: dict[str, str]
    archive_hash: tuple[str, str] | None
    archive_root: str | None
    licence: str
    citation: str
    description: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    mirrors: tuple[str, ...] = ()
    mirror_evidence: str = ""

    @property
    def is_archive(self) -> bool:
        """True when the dataset is published as one zip archive, False for loose files."""
        return self.archive_root is not None

    @property
    def archive_name(self) -> str:
        """File name of the official archive (``ml-100k.zip``); ``""`` for loose files."""
        if not self.is_archive:
            return ""
        return PurePosixPath(urllib.parse.urlparse(self.url).path).name


_ML100K_FILES = {
    "u.data": "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
    "u.item": "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701",
    "u.user": "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c",
    "u.genre": "9757e0d3e6b298159a80dd48eaf938114690e911e39af97a76949ef1663610bb",
    "u.occupation": "cd5fbec9afe345d993a62fc7817df1a4a9079c4feb267b3118763b8fd942137d",
    "u1.base": "ce253ec86c448b44fb3ba9a30d12dcfc2e9210cbde71efada3730c22e9ac212a",
    "u1.test": "18c6014a4b2c7324f250a63f8904a7b16b2b19f911129e346141507b0cbac950",
    "u2.base": "6c06f0b5df4b256da1a994f3ac66edc8da4d3f09bc9282df6b14d893366d703e",
    "u2.test": "4de658d1e04ed9104629509a2e2528fce833ac8e048280183f1df167632038c3",
    "u3.base": "afdc155c291c6edc41c0407e39d7462eb98d341e064f0b0a12175b80b3c4af5d",
    "u3.test": "0f548b51c78327de4c156461d3e430b7e5579fe2b5681586a59416e48fd35f6d",
    "u4.base": "219f0f4d40dfe9c5141d425f53fa91ee23ed275f14e280bbf1b50117afb064ca",
    "u4.test": "7c02ad0a1e7ab1083c8b9d4b627203a051dd7b5eab46d99fa44de33470de8db9",
    "u5.base": "a9574e59ce961eec2121627760b6e9b0974ce1637b3fe69ac32cb14a4bfab485",
    "u5.test": "351cc52e0d15b6c721466276fc24671d40936899e3d01fadeaf312915b8c5634",
}

_MLSMALL_FILES = {
    "ratings.csv": "aa289ca83157595d0df6aea1be6a4ded676ddc4385472e8313a8ed9805352646",
    "movies.csv": "5a5f32dd9bb3797b8e728a1b98958789d2b13f294a69fdfbc5727f8a9611aa07",
    "tags.csv": "92a9f8bb7916dceef6151209845788c3643f794dfa79d1feaec7121b5960399d",
    "links.csv": "97ad18e4e56a09363c65676b6cb3482ce3e2cea2372a24620c1599c843325f31",
}

_ML_LICENCE = (
    "MovieLens data may be used for research, must be cited, may not be used commercially "
    "without permission{}. Full terms: the README inside the dataset folder."
)

#: Hugging Face dataset of the Microsoft Recommenders project that mirrors the MovieLens
#: 100K/1M/10M/20M archives (recommenders-team/recommenders PR #2369).
HF_MOVIELENS = "https://huggingface.co/datasets/Recommenders/MovieLens/resolve/main/"

REGISTRY: dict[str, Dataset] = {
    "ml-100k": Dataset(
        name="ml-100k",
        url="https://files.grouplens.org/datasets/movielens/ml-100k.zip",
        files=_ML100K_FILES,
        # GroupLens publishes md5 (and sha1 is widely used) for this archive, not sha256.
        archive_hash=("md5", "0e33842e24a9c977be4e0107933c0723"),
        archive_root="ml-100k",
        licence=_ML_LICENCE.format(" and may not be redistributed without separate permission"),
        citation=MOVIELENS_CITATION,
        description="MovieLens 100K: 100,000 ratings (1-5) of 1,682 movies by 943 users, 1997-98",
        mirrors=(HF_MOVIELENS + "ml-100k.zip",),
        mirror_evidence=(
            "Hugging Face dataset Recommenders/MovieLens, the fallback of Microsoft Recommenders "
            "since PR #2369 (31 Aug 2026), which states that it hosts byte-identical copies of "
            "the ml-100k, ml-1m, ml-10m and ml-20m zips with matching SHA-256. The file path "
            "follows the resolve/main/<archive> layout of the same organisation's MIND mirror; "
            "the archive's md5 and every file's sha256 are checked as for the official URL."
        ),
    ),
    "ml-latest-small": Dataset(
        name="ml-latest-small",
        url="https://files.grouplens.org/datasets/movielens/ml-latest-small.zip",
        files=_MLSMALL_FILES,
        archive_hash=None,  # not published: the extracted files are verified instead
        archive_root="ml-latest-small",
        licence=_ML_LICENCE.format(""),
        citation=MOVIELENS_CITATION,
        description="MovieLens latest-small (2018): 100,836 ratings (0.5-5) of 9,742 movies by 610 users",
        mirror_evidence=(
            "No public mirror with evidence of identical bytes is known (the Recommenders "
            "Hugging Face mirror holds 100K, 1M, 10M and 20M only); use RECSYS_DATA_MIRROR or "
            "place the files by hand."
        ),
    ),
}

_OBD_FILES = {
    "LICENSE": "6bc32ef299d465f98043edc6e487a6e72a69600f3a2144f4e69be8f1b36be9f7",
    "obd/bts/men/item_context.csv": "3b411ed6b0471316321a6b93f4f756bb25888eac6218cd71d0b603d41d85732d",
    "obd/bts/men/men.csv": "db6d1f7ed2d591ba521533e45286d4c1fba7fe57a8ad2e80342210335f43c527",
    "obd/bts/women/item_context.csv": "a56295bad066a558eb783055afd9279f5f4e209a4776eafc22151c53f0ac89d4",
    "obd/bts/women/women.csv": "e5d1b49a39b608585a2f3014a3f54970430cd37a495c1b73fceb85cdf428a5b8",
    "obd/random/men/item_context.csv": "6d855c2b7e917d0448d71bbe62c023147495882c0fdc8c41e86fef86abf9fe09",
    "obd/random/men/men.csv": "ede6d08c6877f99cd3770f7d09e26c738e6aa6de4445ccccfb1356ba5d06b1eb",
    "obd/random/women/item_context.csv": "b1ca4905f97703d196004f2ad4552c1e90c2afad8b50688d333b0d2dc0b33147",
    "obd/random/women/women.csv": "e65f3bd3beb17664fa69cc129bf7bf852a775f8ffa630506e505fc905315bb34",
}

#: Commit of st-tech/zr-obp (2022-11-04) whose git objects were hashed: every registered
#: file's sha256 at this commit equals the registry's.
OBP_COMMIT = "8cbd5fa4558b7ad2ba4781546d6604e4cc3e07c4"

REGISTRY["open-bandit-dataset-small"] = Dataset(
    name="open-bandit-dataset-small",
    # the small sample ships inside the Open Bandit Pipeline repository, as loose files
    url="https://raw.githubusercontent.com/st-tech/zr-obp/master/",
    files=_OBD_FILES,
    archive_hash=None,
    archive_root=None,
    licence="Apache License 2.0 (the LICENSE file in the dataset folder)",
    citation=("Y. Saito, S. Aihara, M. Matsutani and Y. Narita. Open Bandit Dataset and Pipeline: "
              "Towards Realistic and Reproducible Off-Policy Evaluation. NeurIPS Datasets and "
              "Benchmarks, 2021"),
    description=("Open Bandit Dataset, small sample (ZOZOTOWN fashion e-commerce): 4 logs of "
                 "10,000 impressions (random and Bernoulli Thompson sampling policies x men's "
                 "and women's campaigns)"),
    mirrors=(f"https://cdn.jsdelivr.net/gh/st-tech/zr-obp@{OBP_COMMIT}/",),
    mirror_evidence=(
        "jsDelivr serves the files of a public GitHub repository at a pinned commit "
        "(cdn.jsdelivr.net/gh/<owner>/<repo>@<commit>/<path>); the sha256 of every registered "
        f"file at commit {OBP_COMMIT[:12]} was computed from the repository's git objects and "
        "equals the registry's. The same logs (not LICENSE) are also in the repository under "
        "obp/dataset/obd/ and in the obp package, byte-identical at that commit."
    ),
)

_LASTFM_FILES = {
    "artists.dat": "c173881362c6b28551368fecb3c0be5a6a30a6cd859e1f5775413dfe46d48648",
    "readme.txt": "6fe5d1e6f67b025fc50cd70883dd1a1ff16c5ff37b5b7abfb33644b83468b209",
    "tags.dat": "e95175f259be4c0c47644ae23d66131cd6d5767142a1405000e79f5584691d70",
    "user_artists.dat": "001400dc3c7d2667fca6e4ea6dc6acc31a9dd28ad5cd0f74cea988c019934d3b",
    "user_friends.dat": "9a3a8f7fa5f5ec832335e5b58ed69a4cf27c6f6f6afcde62134810eea46445a7",
    "user_taggedartists.dat": "d31fe938fcfeed6f0059f37a36b156f63674d073fc2553e5cc9dc1595e365bc7",
}

REGISTRY["hetrec2011-lastfm-2k"] = Dataset(
    name="hetrec2011-lastfm-2k",
    url="https://files.grouplens.org/datasets/hetrec2011/hetrec2011-lastfm-2k.zip",
    files=_LASTFM_FILES,
    archive_hash=None,  # not published by GroupLens: the extracted files are verified instead
    archive_root="",  # the archive holds the files at its top level
    licence=("Last.fm data for non-commercial use; commercial use needs Last.fm's permission "
             "(readme.txt in the dataset folder)"),
    citation=("I. Cantador, P. Brusilovsky and T. Kuflik. 2nd Workshop on Information "
              "Heterogeneity and Fusion in Recommender Systems (HetRec 2011). RecSys 2011; "
              "and the Last.fm website, http://www.lastfm.com"),
    description=("HetRec 2011 Last.fm: 1,892 users, 17,632 artists, 92,834 user-artist play "
                 "counts, 12,717 friendships, 186,479 tag assignments"),
    mirror_evidence=(
        "No public mirror with evidence of identical bytes is known; use RECSYS_DATA_MIRROR "
        "or place the files by hand."
    ),
)

_DKN_FILES = {
    "LICENSE": "fecca541be509e0eb9b4855960da0cf232d02fa21f77f614f7ccae436440cbd9",
    "data/news/raw_train.txt": "9a699aac3bc2e95437ea943f36771764e45dc2b16ff86db6aee54e38010fd839",
    "data/news/raw_test.txt": "5698c122c7643b0f5937e109fb2fc9a7716147fb3e15ab10c70eb4f76f2eefc9",
}

#: Commit of hwwang55/DKN (2019-11-21, master) whose git objects were hashed.
DKN_COMMIT = "90a188021a82ddaadffc44f6d87e1e72b1c3db9a"

REGISTRY["dkn-bing-news-sample"] = Dataset(
    name="dkn-bing-news-sample",
    url="https://raw.githubusercontent.com/hwwang55/DKN/master/",
    files=_DKN_FILES,
    archive_hash=None,
    archive_root=None,
    licence="MIT License (the LICENSE file in the dataset folder)",
    citation=("H. Wang, F. Zhang, X. Xie and M. Guo. DKN: Deep Knowledge-Aware Network for "
              "News Recommendation. WWW 2018"),
    description=("DKN Bing News sample: 10,401 training and 462 test (user, news title, "
                 "click label, entities) rows"),
    mirrors=(f"https://cdn.jsdelivr.net/gh/hwwang55/DKN@{DKN_COMMIT}/",),
    mirror_evidence=(
        "jsDelivr serves the files of a public GitHub repository at a pinned commit; the "
        f"sha256 of every registered file at commit {DKN_COMMIT[:12]} was computed from the "
        "repository's git objects and equals the registry's."
    ),
)

GENRES_ML100K = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
]


# --------------------------------------------------------------------------- files
def sha256_file(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB blocks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def get_dataset(name: str) -> Dataset:
    """The registry entry for ``name``; an unknown name lists the known ones."""
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise DataError(f"unknown dataset {name!r}; known datasets: {known}") from None


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The data folder: ``data_dir``, else ``$RECSYS_DATA_DIR``, else the repository's ``data/``."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return REPO_DATA_DIR


def verify_files(folder: Path, ds: Dataset) -> None:
    """Check every registered file of ``ds`` in ``folder``; raise with names and digests."""
    for rel, expected in ds.files.items():
        path = folder / rel
        if not path.is_file():
            raise DataError(f"{path} is missing from the {ds.name} folder {folder}")
        actual = sha256_file(path)
        if actual != expected:
            raise ChecksumError(
                f"{path} has been modified or is corrupted: expected sha256 {expected}, "
                f"got {actual}. Delete the folder {folder} to download a fresh copy."
            )


def _has_all_files(folder: Path, ds: Dataset) -> bool:
    return all((folder / rel).is_file() for rel in ds.files)


# --------------------------------------------------------------------------- sources
def _site_mirror() -> str | None:
    """``$RECSYS_DATA_MIRROR`` as a base URL ending in ``/``, or ``None`` when unset."""
    base = os.environ.get(MIRROR_ENV_VAR, "").strip()
    if not base:
        return None
    if urllib.parse.urlparse(base).scheme not in ("http", "https", "file"):
        raise DataError(
            f"{MIRROR_ENV_VAR}={base!r} is not a URL: expected a base URL starting with "
            "http://, https:// or file:// (for example http://127.0.0.1:8000/), under which "
            "<dataset name>/<archive file name> or <dataset name>/<file> are kept."
        )
    return base if base.endswith("/") else base + "/"


def sources(name: str) -> list[tuple[str, str]]:
    """The ordered download sources of dataset ``name``: ``(url, label)`` pairs.

    Order: the site mirror ``$RECSYS_DATA_MIRROR`` when set (label ``"site mirror"``), the
    official URL (``"official"``), then the registered public mirrors (``"mirror"``). For an
    archive each ``url`` is the archive itself; for loose files it is a base URL to which
    each file's relative path is appended.
    """
    ds = get_dataset(name)
    out: list[tuple[str, str]] = []
    site = _site_mirror()
    if site is not None:
        leaf = ds.archive_name if ds.is_archive else ""
        out.append((f"{site}{urllib.parse.quote(ds.name)}/{leaf}", "site mirror"))
    out.append((ds.url, "official"))
    out.extend((m, "mirror") for m in ds.mirrors)
    return out


class _SourceFailed(Exception):
    """One source could not deliver; ``reason`` is shown to the reader, ``kind`` classifies it."""

    def __init__(self, reason: str, kind: str = "network"):
        super().__init__(reason)
        self.reason = reason
        self.kind = kind  # "network" (dead or unreachable), "missing" (4xx), "checksum", "unsafe", "format"


def _classify(exc: BaseException, timeout: float) -> tuple[str, bool, str]:
    """``(reason, transient, kind)`` for an exception raised while downloading.

    ``kind`` is ``"missing"`` for a source that answered but has no such file (HTTP 4xx, no
    such local file) and ``"network"`` otherwise.
    """
    if isinstance(exc, urllib.error.HTTPError):
        transient = exc.code >= 500 or exc.code == 429
        return f"HTTP {exc.code} {exc.reason}", transient, "network" if transient else "missing"
    if isinstance(exc, urllib.error.URLError):
        inner = exc.reason
        if isinstance(inner, BaseException):
            return _classify(inner, timeout)
        return f"{inner}", True, "network"
    if isinstance(exc, socket.gaierror):
        reason = f"cannot resolve the host name ({exc.strerror or exc}): offline, or DNS is down"
        return reason, True, "network"
    if isinstance(exc, FileNotFoundError):
        return f"no such file ({exc.filename or exc})", False, "missing"
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return f"timed out (no answer within {timeout:g} s)", True, "network"
    if isinstance(exc, ssl.SSLCertVerificationError):
        detail = getattr(exc, "verify_message", None) or exc
        return f"TLS certificate verification failed ({detail})", False, "network"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused", True, "network"
    if isinstance(exc, http.client.IncompleteRead):
        return (f"connection closed after {len(exc.partial):,} bytes, "
                f"{exc.expected:,} more were announced"), True, "network"
    if isinstance(exc, (OSError, http.client.HTTPException)):
        return f"{type(exc).__name__}: {exc}", True, "network"
    return f"{type(exc).__name__}: {exc}", False, "network"


def _download(url: str, dest: Path, progress: bool = True, timeout: float = TIMEOUT) -> None:
    """Stream ``url`` to ``dest`` (one attempt) with a progress bar on stdout.

    Raises the underlying error; a body shorter than its ``Content-Length`` raises
    :class:`http.client.IncompleteRead`.
    """
    from tqdm import tqdm

    req = urllib.request.Request(url, headers={"User-Agent": "recsys-nn-book"})
    with urllib.request.urlopen(req, timeout=timeout) as resp, open(dest, "wb") as out:
        total = int(resp.headers.get("Content-Length") or 0) or None
        got = 0
        with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name.split(".")[0], file=sys.stdout,
                  disable=not progress) as bar:
            for block in iter(lambda: resp.read(1 << 16), b""):
                out.write(block)
                got += len(block)
                bar.update(len(block))
        if total is not None and got < total:
            raise http.client.IncompleteRead(b"\0" * got, total - got)


def _download_retrying(url: str, dest: Path, *, progress: bool, timeout: float, attempts: int,
                       backoff: float) -> None:
    """Download with up to ``attempts`` tries; raise :class:`_SourceFailed` with the last reason.

    Waits ``backoff * 2**(k-1)`` seconds before try ``k + 1``. Permanent failures (HTTP 4xx
    other than 429, TLS certificate errors, malformed URLs) are not retried.
    """
    reason = "not tried"
    for k in range(1, attempts + 1):
        try:
            _download(url, dest, progress=progress, timeout=timeout)
            return
        except Exception as exc:  # noqa: BLE001 -- every failure is classified and reported
            dest.unlink(missing_ok=True)
            reason, transient, kind = _classify(exc, timeout)
            if not transient:
                raise _SourceFailed(reason, kind) from None
            if k < attempts and backoff > 0:
                time.sleep(backoff * 2 ** (k - 1))
    tries = f" (after {attempts} attempts)" if attempts > 1 else ""
    raise _SourceFailed(reason + tries, "network")


def _safe_members(zf: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    """Refuse members with absolute paths or ``..`` components (zip-slip)."""
    for info in zf.infolist():
        name = info.filename.replace("\\", "/")
        p = PurePosixPath(name)
        if name.startswith("/") or p.is_absolute() or ".." in p.parts or (p.parts and ":" in p.parts[0]):
            raise DataError(
                f"refusing to extract archive member {info.filename!r}: it points outside the "
                "target folder (absolute path or '..'). The archive is not the official one."
            )
    return zf.infolist()


def _check_download(path: Path, expected: str, what: str) -> None:
    """Raise :class:`_SourceFailed` (kind ``checksum``) naming ``what`` if the sha256 differs."""
    actual = sha256_file(path)
    if actual != expected:
        raise _SourceFailed(f"{what} failed verification: expected sha256 {expected}, got {actual}",
                            "checksum")


def _try_archive(ds: Dataset, url: str, base: Path, *, progress: bool, timeout: float,
                 attempts: int, backoff: float) -> tuple[Path, Path]:
    """Download, verify and extract one archive source.

    Returns ``(tmp_dir, extracted)``: the verified files are in ``extracted``, inside
    ``tmp_dir``, which the caller removes. On any failure everything written is deleted and
    :class:`_SourceFailed` says why.
    """
    tmp_zip = Path(tempfile.mkstemp(dir=base, prefix=f".{ds.name}-", suffix=".zip.part")[1])
    tmp_dir = Path(tempfile.mkdtemp(dir=base, prefix=f".{ds.name}-extract-"))
    try:
        _download_retrying(url, tmp_zip, progress=progress, timeout=timeout, attempts=attempts,
                           backoff=backoff)
        if ds.archive_hash is not None:
            algo, expected = ds.archive_hash
            actual = sha256_file(tmp_zip, algo)
            if actual != expected:
                raise _SourceFailed(f"archive failed verification: expected {algo} {expected}, "
                                    f"got {actual}", "checksum")
        try:
            with zipfile.ZipFile(tmp_zip) as zf:
                members = _safe_members(zf)
                zf.extractall(tmp_dir / "x", members=members)
        except zipfile.BadZipFile as exc:
            raise _SourceFailed(f"not a valid zip archive ({exc})", "format") from None
        except DataError as exc:
            raise _SourceFailed(str(exc), "unsafe") from None
        extracted = tmp_dir / "x" / ds.archive_root if ds.archive_root else tmp_dir / "x"
        if not extracted.is_dir():
            raise _SourceFailed(f"the archive has no folder {ds.archive_root!r}", "format")
        prefix = f"{ds.archive_root}/" if ds.archive_root else ""
        for rel, expected in ds.files.items():
            path = extracted / rel
            if not path.is_file():
                raise _SourceFailed(f"the archive lacks {prefix}{rel}", "format")
            _check_download(path, expected, f"{prefix}{rel}")
        return tmp_dir, extracted
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    finally:
        tmp_zip.unlink(missing_ok=True)


def _place_by_hand(ds: Dataset, base: Path) -> str:
    """The 'put these files there' paragraph of an error message."""
    files = "\n".join(f"  {base / ds.name / rel}" for rel in ds.files)
    if ds.is_archive:
        check = (f", check its {ds.archive_hash[0]} is {ds.archive_hash[1]}"
                 if ds.archive_hash else "")
        inside = f"its folder {ds.archive_root}/" if ds.archive_root else "its top level"
        how = (f"download {ds.archive_name} from one of the URLs above on a machine that can reach "
               f"it{check}, extract it, and put these files (from {inside}) in place:")
    else:
        bases = ", ".join(url for url, _ in sources(ds.name))
        how = (f"download each file on a machine that can reach one of {bases} (base URL + the "
               "file's path below the dataset folder), and put these files in place:")
    return (
        f"To install it by hand, {how}\n{files}\n"
        f"Every file's sha256 is checked against helpers/data.py (REGISTRY). Or point the "
        f"{ENV_VAR} environment variable, or the data_dir argument, at a folder that holds a "
        f"'{ds.name}' folder with them, or set {MIRROR_ENV_VAR} to a site mirror."
    )


def _all_failed_message(ds: Dataset, base: Path, failures: list[tuple[str, str, str]]) -> str:
    """The error raised when no source delivered: each URL with its reason, then what to do."""
    lines = "\n".join(f"  {i}. {url} ({label}): {reason}"
                      for i, (url, label, reason) in enumerate(failures, 1))
    msg = (f"{ds.name} is not available locally and could not be downloaded from any of its "
           f"sources; nothing was written under {base}.\nTried:\n{lines}\n"
           f"{_place_by_hand(ds, base)}")
    return msg


def fetch(name: str, data_dir: str | os.PathLike | None = None, *, progress: bool = True,
          timeout: float | None = None, attempts: int | None = None,
          backoff: float | None = None) -> Path:
    """Return the verified folder of dataset ``name``, downloading it if needed.

    A complete local folder is verified and returned silently. Otherwise the sources of
    :func:`sources` are tried in order (``timeout`` seconds per connection and read,
    ``attempts`` tries per source for transient failures, ``backoff`` seconds before the
    second try, doubling; defaults :data:`TIMEOUT`, :data:`ATTEMPTS`, :data:`BACKOFF`) until
    one passes the checksum gate. The licence and citation are printed after a download.

    Raises :class:`DataError` -- :class:`ChecksumError` when every source served bytes that
    failed verification -- listing each URL tried with its reason and the files to place by
    hand. Nothing is left half-written.
    """
    timeout = TIMEOUT if timeout is None else timeout
    attempts = ATTEMPTS if attempts is None else attempts
    backoff = BACKOFF if backoff is None else backoff
    if not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    if int(attempts) != attempts or attempts < 1:
        raise ValueError(f"attempts must be an integer >= 1, got {attempts!r}")
    if not backoff >= 0:
        raise ValueError(f"backoff must be >= 0 seconds, got {backoff!r}")
    ds = get_dataset(name)
    base = resolve_data_dir(data_dir)
    folder = base / ds.name
    if _has_all_files(folder, ds):
        verify_files(folder, ds)
        return folder
    if folder.exists() and any(folder.iterdir()):
        missing = [rel for rel in ds.files if not (folder / rel).is_file()]
        raise DataError(
            f"{folder} exists but lacks {', '.join(missing)}. Delete that folder to download "
            f"a fresh copy, or copy the missing files from {ds.url}."
        )
    srcs = sources(name)  # validates RECSYS_DATA_MIRROR before anything is written
    try:
        base.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=base, prefix=".write-test-", delete=True)
        probe.close()
    except OSError as exc:
        raise DataError(f"{ds.name} is not available locally and cannot be downloaded: {base} is "
                        f"not writable ({exc}).\n{_place_by_hand(ds, base)}") from None

    opts = dict(progress=progress, timeout=timeout, attempts=int(attempts), backoff=backoff)
    failures: list[tuple[str, str, str]] = []
    kinds: list[str] = []
    if ds.is_archive:
        used = None
        for url, label in srcs:
            try:
                tmp_dir, extracted = _try_archive(ds, url, base, **opts)
            except _SourceFailed as exc:
                failures.append((url, label, exc.reason))
                kinds.append(exc.kind)
                continue
            try:
                _move_into_place(extracted, folder, ds)
            finally:
                shutil.rmtree(tmp_dir, ignore_errors=True)
            used = url
            break
    else:
        used = _fetch_files(ds, srcs, folder, base, failures, kinds, opts)
    if used is None:
        cls = ChecksumError if kinds and all(k == "checksum" for k in kinds) else DataError
        raise cls(_all_failed_message(ds, base, failures))
    _show_notice(ds, used)
    return folder


def _move_into_place(extracted: Path, folder: Path, ds: Dataset) -> None:
    """Rename the verified ``extracted`` folder to ``folder`` (atomic on one file system)."""
    if folder.exists():
        try:
            folder.rmdir()  # empty (checked by the caller)
        except OSError:
            pass
    try:
        os.replace(extracted, folder)
    except OSError:
        # another process may have finished the same download first: accept its copy if valid
        if _has_all_files(folder, ds):
            verify_files(folder, ds)
            return
        raise


def _fetch_files(ds: Dataset, srcs: list[tuple[str, str]], folder: Path, base: Path,
                 failures: list[tuple[str, str, str]], kinds: list[str], opts: dict) -> str | None:
    """Download a dataset published as loose files; return the first source used, or ``None``.

    Each file is tried from each source in order and verified on its own, so files may come
    from different sources (they are checked against the same sha256). A source that failed
    at the network level (unreachable, timed out, bad certificate) is not tried again for the
    next files. The folder is moved into place only when every file is verified.
    """
    tmp_dir = Path(tempfile.mkdtemp(dir=base, prefix=f".{ds.name}-files-"))
    dead: set[str] = set()
    used: list[str] = []
    try:
        for rel, expected in ds.files.items():
            target = tmp_dir / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            ok = False
            for src, label in srcs:
                if src in dead:
                    continue
                url = src + urllib.parse.quote(rel)
                try:
                    _download_retrying(url, target, **opts)
                    _check_download(target, expected, rel)
                except _SourceFailed as exc:
                    target.unlink(missing_ok=True)
                    failures.append((url, label, exc.reason))
                    kinds.append(exc.kind)
                    if exc.kind == "network":
                        dead.add(src)
                    continue
                ok = True
                used.append(src)
                break
            if not ok:
                return None
        _move_into_place(tmp_dir, folder, ds)
        return used[0] if len(set(used)) == 1 else ", ".join(dict.fromkeys(used))
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def _show_notice(ds: Dataset, source: str) -> None:
    """Printed once per download: what the data is, where it came from, its licence and citation."""
    print(f"Downloaded {ds.name} from {source}\n{ds.description}.\n"
          f"Licence: {ds.licence}\nPlease cite: {ds.citation}")


# --------------------------------------------------------------------------- MovieLens
@dataclass
class MovieLens:
    """Tidy tables of one MovieLens release.

    ``ratings``: ``user_id`` (int32), ``item_id`` (int32), ``rating`` (float32),
    ``timestamp`` (datetime64[s], UTC), in the data file's row order.
    ``items``: one row per movie, indexed by ``item_id``; for ml-100k ``title``,
    ``release_date`` (datetime64), ``imdb_url`` and 19 genre flags (uint8, columns named as
    in ``u.genre``); for ml-latest-small ``title``, ``genres`` (list of str), ``year``.
    ``users`` (ml-100k only): ``age`` (int16), ``gender`` (category), ``occupation``
    (category), ``zip_code`` (str), indexed by ``user_id``.
    ``tags`` and ``links``: ml-latest-small only.
    """

    name: str
    ratings: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame | None = None
    tags: pd.DataFrame | None = None
    links: pd.DataFrame | None = None

    @property
    def movies(self) -> pd.DataFrame:
        """Alias of ``items``."""
        return self.items


def _read_ml100k_ratings(path: Path) -> pd.DataFrame:
    df = pd.read_csv(path, sep="\t", header=None,
                     names=["user_id", "item_id", "rating", "timestamp"],
                     dtype={"user_id": np.int32, "item_id": np.int32, "rating": np.float32,
                            "timestamp": np.int64})
    df["timestamp"] = pd.to_datetime(df["timestamp"], unit="s").astype("datetime64[s]")
    return df


def load_movielens(name: str = "ml-100k", data_dir: str | os.PathLike | None = None) -> MovieLens:
    """Load a MovieLens release (``"ml-100k"`` or ``"ml-latest-small"``) as tidy DataFrames."""
    if name not in ("ml-100k", "ml-latest-small"):
        get_dataset(name)  # raises for unknown names
        raise DataError(f"{name!r} is not a MovieLens dataset; use 'ml-100k' or 'ml-latest-small'")
    folder = fetch(name, data_dir)
    if name == "ml-100k":
        ratings = _read_ml100k_ratings(folder / "u.data")
        genres = pd.read_csv(folder / "u.genre", sep="|", header=None, names=["genre", "id"])
        genre_names = genres.dropna()["genre"].tolist()
        items = pd.read_csv(folder / "u.item", sep="|", header=None, encoding="latin-1",
                            names=["item_id", "title", "release_date", "video_release_date",
                                   "imdb_url", *genre_names])
        items = items.drop(columns="video_release_date").set_index("item_id")
        items.index = items.index.astype(np.int32)
        items["release_date"] = pd.to_datetime(items["release_date"], format="%d-%b-%Y")
        items[genre_names] = items[genre_names].astype(np.uint8)
        users = pd.read_csv(folder / "u.user", sep="|", header=None,
                            names=["user_id", "age", "gender", "occupation", "zip_code"],
                            dtype={"zip_code": str})
        users = users.set_index("user_id")
        users.index = users.index.astype(np.int32)
        users["age"] = users["age"].astype(np.int16)
        users["gender"] = users["gender"].astype("category")
        occupations = pd.read_csv(folder / "u.occupation", header=None)[0].tolist()
        users["occupation"] = pd.Categorical(users["occupation"], categories=occupations)
        return MovieLens(name, ratings, items, users=users)

    ratings = pd.read_csv(folder / "ratings.csv",
                          dtype={"userId": np.int32, "movieId": np.int32, "rating": np.float32,
                                 "timestamp": np.int64})
    ratings = ratings.rename(columns={"userId": "user_id", "movieId": "item_id"})
    ratings["timestamp"] = pd.to_datetime(ratings["timestamp"], unit="s").astype("datetime64[s]")
    movies = pd.read_csv(folder / "movies.csv").rename(columns={"movieId": "item_id"})
    movies["item_id"] = movies["item_id"].astype(np.int32)
    movies["year"] = pd.to_numeric(movies["title"].str.extract(r"\((\d{4})\)\s*$")[0],
                                   errors="coerce").astype("Int16")
    movies["genres"] = movies["genres"].str.split("|")
    movies = movies.set_index("item_id")
    tags = pd.read_csv(folder / "tags.csv").rename(columns={"userId": "user_id", "movieId": "item_id"})
    tags["timestamp"] = pd.to_datetime(tags["timestamp"], unit="s").astype("datetime64[s]")
    links = pd.read_csv(folder / "links.csv", dtype={"imdbId": str}).rename(
        columns={"movieId": "item_id", "imdbId": "imdb_id", "tmdbId": "tmdb_id"})
    return MovieLens(name, ratings, movies, tags=tags, links=links.set_index("item_id"))


def load_ml100k_fold(fold: int | str = 1, data_dir: str | os.PathLike | None = None
                     ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The canonical ML-100K split ``u{fold}.base`` / ``u{fold}.test`` (80k / 20k ratings).

    ``fold`` is 1-5 (or ``"u1"`` ... ``"u5"``). The five test sets are disjoint and together
    cover all 100,000 ratings; every test user also appears in the base file.
    """
    key = str(fold).removeprefix("u")
    if key not in {"1", "2", "3", "4", "5"}:
        raise ValueError(f"fold must be 1-5 (or 'u1'..'u5'), got {fold!r}")
    folder = fetch("ml-100k", data_dir)
    return (_read_ml100k_ratings(folder / f"u{key}.base"),
            _read_ml100k_ratings(folder / f"u{key}.test"))


# --------------------------------------------------------------------------- Open Bandit
def load_open_bandit(policy: str = "random", campaign: str = "men",
                     data_dir: str | os.PathLike | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One log of the Open Bandit Dataset small sample and its item features.

    ``policy`` is ``"random"`` (uniformly random recommendations) or ``"bts"`` (Bernoulli
    Thompson sampling); ``campaign`` is ``"men"`` or ``"women"``. Returns ``(log, items)``:
    ``log`` has one row per impression -- ``timestamp`` (datetime, UTC), ``item_id``,
    ``position`` (slot 1-3), ``click`` (0/1), ``propensity_score`` (the logging policy's
    probability of showing that item there), hashed ``user_feature_*`` and
    ``user-item_affinity_*`` columns; ``items`` is indexed by ``item_id``.
    """
    if policy not in ("random", "bts"):
        raise ValueError(f"policy must be 'random' or 'bts', got {policy!r}")
    if campaign not in ("men", "women"):
        raise ValueError(f"campaign must be 'men' or 'women', got {campaign!r}")
    folder = fetch("open-bandit-dataset-small", data_dir) / "obd" / policy / campaign
    log = pd.read_csv(folder / f"{campaign}.csv", index_col=0)
    log["timestamp"] = pd.to_datetime(log["timestamp"], utc=True, format="ISO8601")
    log[["item_id", "position", "click"]] = log[["item_id", "position", "click"]].astype(np.int16)
    items = pd.read_csv(folder / "item_context.csv", index_col=0).set_index("item_id")
    return log, items


# --------------------------------------------------------------------------- Last.fm (HetRec 2011)
@dataclass
class LastFM:
    """Tidy tables of the HetRec 2011 Last.fm dataset (:func:`load_lastfm`).

    ``user_artists``: ``user_id`` (int32), ``artist_id`` (int32), ``weight`` (int32, the
    number of times the user played the artist), one row per (user, artist) pair, in file
    order. ``friends``: one row per undirected friendship, ``user_id`` < ``friend_id``
    (both int32); ``user_friends.dat`` lists every friendship in both directions (25,434
    rows, 12,717 pairs). ``artists``: indexed by ``artist_id`` (int32), ``name``, ``url``,
    ``picture_url`` (str; ``picture_url`` is missing for some artists). ``tags``: indexed by
    ``tag_id`` (int32), ``tag`` (str, decoded from Latin-1). ``user_tagged_artists``:
    ``user_id``, ``artist_id``, ``tag_id`` (int32) and the date of the assignment as given,
    ``year`` (int16), ``month`` (int8), ``day`` (int8); a few years are implausible (1956)
    and some tagged artists are absent from ``artists``, both as in the source files.
    """

    user_artists: pd.DataFrame
    friends: pd.DataFrame
    artists: pd.DataFrame
    tags: pd.DataFrame
    user_tagged_artists: pd.DataFrame


def _read_tsv(path: Path, encoding: str, columns: list[str]) -> pd.DataFrame:
    """A tab-separated file with a header row; quotes are data, not quoting (QUOTE_NONE)."""
    df = pd.read_csv(path, sep="\t", encoding=encoding, quoting=csv.QUOTE_NONE,
                     keep_default_na=False, na_values=[""], dtype=str)
    if list(df.columns) != columns:
        raise DataError(f"{path} has columns {list(df.columns)}, expected {columns}")
    return df


def _ints(df: pd.DataFrame, path: Path, dtypes: dict[str, type]) -> pd.DataFrame:
    """Cast integer columns, naming the file and column of any value that is not an integer."""
    for col, dtype in dtypes.items():
        values = pd.to_numeric(df[col], errors="coerce")
        bad = values.isna() | (values != values.round())
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"{path}: column {col!r} must hold integers; row {row + 2} has "
                            f"{df[col].iloc[row]!r}")
        info = np.iinfo(dtype)
        if values.min() < info.min or values.max() > info.max:
            raise DataError(f"{path}: column {col!r} has values outside the {np.dtype(dtype).name} range")
        df[col] = values.astype(dtype)
    return df


def load_lastfm(data_dir: str | os.PathLike | None = None) -> LastFM:
    """Load HetRec 2011 Last.fm (``hetrec2011-lastfm-2k``) as tidy DataFrames (see :class:`LastFM`).

    Files are tab-separated with a header row. ``tags.dat`` is Latin-1 (e.g. ``fußball``);
    the other files are UTF-8 or ASCII. Quote characters are part of artist names, not CSV
    quoting. Friend pairs are symmetrised and de-duplicated: a pair listed in one direction
    only still appears once.
    """
    folder = fetch("hetrec2011-lastfm-2k", data_dir)
    p = folder / "user_artists.dat"
    ua = _read_tsv(p, "utf-8", ["userID", "artistID", "weight"])
    ua = _ints(ua.rename(columns={"userID": "user_id", "artistID": "artist_id"}), p,
               {"user_id": np.int32, "artist_id": np.int32, "weight": np.int32})

    p = folder / "user_friends.dat"
    fr = _read_tsv(p, "utf-8", ["userID", "friendID"])
    fr = _ints(fr.rename(columns={"userID": "a", "friendID": "b"}), p, {"a": np.int32, "b": np.int32})
    fr = fr[fr["a"] != fr["b"]]
    lo = np.minimum(fr["a"].to_numpy(), fr["b"].to_numpy())
    hi = np.maximum(fr["a"].to_numpy(), fr["b"].to_numpy())
    friends = (pd.DataFrame({"user_id": lo, "friend_id": hi}).drop_duplicates()
               .sort_values(["user_id", "friend_id"]).reset_index(drop=True))

    p = folder / "artists.dat"
    artists = _read_tsv(p, "utf-8", ["id", "name", "url", "pictureURL"])
    artists = _ints(artists.rename(columns={"id": "artist_id", "pictureURL": "picture_url"}), p,
                    {"artist_id": np.int32}).set_index("artist_id")

    p = folder / "tags.dat"
    tags = _read_tsv(p, "latin-1", ["tagID", "tagValue"])
    tags = _ints(tags.rename(columns={"tagID": "tag_id", "tagValue": "tag"}), p,
                 {"tag_id": np.int32}).set_index("tag_id")

    p = folder / "user_taggedartists.dat"
    uta = _read_tsv(p, "utf-8", ["userID", "artistID", "tagID", "day", "month", "year"])
    uta = uta.rename(columns={"userID": "user_id", "artistID": "artist_id", "tagID": "tag_id"})
    uta = _ints(uta, p, {"user_id": np.int32, "artist_id": np.int32, "tag_id": np.int32,
                         "year": np.int16, "month": np.int8, "day": np.int8})
    uta = uta[["user_id", "artist_id", "tag_id", "year", "month", "day"]]
    return LastFM(user_artists=ua, friends=friends, artists=artists, tags=tags,
                  user_tagged_artists=uta)


# --------------------------------------------------------------------------- DKN Bing News sample
def _read_dkn(path: Path) -> pd.DataFrame:
    """Parse one DKN raw file: ``user_id<TAB>title<TAB>label<TAB>id:name;id:name...`` per line."""
    users: list[int] = []
    titles: list[str] = []
    labels: list[int] = []
    entities: list[list[tuple[int, str]]] = []
    with open(path, encoding="utf-8", newline="") as fh:
        text = fh.read()
    for n, line in enumerate(text.splitlines(), 1):
        if not line:
            continue
        parts = line.split("\t")
        if len(parts) != 4:
            raise DataError(f"{path}, line {n}: expected 4 tab-separated fields (user id, title, "
                            f"label, entities), got {len(parts)}")
        user, title, label, ents = parts
        if not user.isdigit() or label not in ("0", "1"):
            raise DataError(f"{path}, line {n}: expected an integer user id and a 0/1 label, got "
                            f"{user!r} and {label!r}")
        pairs = []
        for item in filter(None, ents.split(";")):
            eid, sep, ename = item.partition(":")
            if not sep or not eid.isdigit():
                raise DataError(f"{path}, line {n}: entity {item!r} is not 'id:name' with an "
                                "integer id")
            pairs.append((int(eid), ename))
        users.append(int(user))
        titles.append(title)
        labels.append(int(label))
        entities.append(pairs)
    df = pd.DataFrame({"user_id": np.asarray(users, dtype=np.int32),
                       "title": pd.Series(titles, dtype="str"),
                       "label": np.asarray(labels, dtype=np.int8)})
    df["entities"] = pd.Series(entities, dtype=object)
    return df


def load_dkn_news(data_dir: str | os.PathLike | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The DKN Bing News sample as ``(train, test)`` DataFrames, one row per (user, news) impression.

    Columns: ``user_id`` (int32); ``title`` (str: the news title as lower-case words joined
    by single spaces, as in the file -- ``title.str.split(" ")`` gives the word lists);
    ``label`` (int8: 1 clicked, 0 not); ``entities`` (object: a list of ``(entity_id: int,
    name: str)`` tuples, the knowledge-graph entities the title mentions, in file order).
    Rows keep the file order. ``raw_train.txt`` has 10,401 rows, ``raw_test.txt`` 462; both
    are UTF-8 with CRLF line ends.
    """
    folder = fetch("dkn-bing-news-sample", data_dir) / "data" / "news"
    return _read_dkn(folder / "raw_train.txt"), _read_dkn(folder / "raw_test.txt")
