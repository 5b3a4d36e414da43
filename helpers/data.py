"""Real datasets, safely: a registry, checksummed downloads, and tidy MovieLens loaders.

Where the files come from (first match wins):

1. the ``data_dir`` argument of a loader;
2. the ``RECSYS_DATA_DIR`` environment variable;
3. ``data/`` in the repository (the git-ignored download cache).

A dataset lives in ``<data folder>/<name>/`` exactly as its official archive extracts it
(``data/ml-100k/u.data`` ...). A folder that already holds the files is used as is, after
every file the book reads is checked against its registered sha256. Otherwise the official
archive is downloaded over https to a temporary file, its checksum verified, its members
checked (no absolute paths, no ``..``), extracted into a temporary folder, every file
verified, and only then renamed into place: an interrupted or corrupted download never
leaves a half-written dataset behind.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

REPO_DATA_DIR = Path(__file__).resolve().parent.parent / "data"
ENV_VAR = "RECSYS_DATA_DIR"

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
    ``archive_root`` is the folder inside the archive that holds the files. A dataset that
    is published as loose files rather than an archive has ``archive_root=None``: then
    ``url`` is a base URL and each file is downloaded from ``url + path``.
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
)

GENRES_ML100K = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
]

_NOTICE_SHOWN: set[str] = set()


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


def _missing_message(ds: Dataset, base: Path, reason: str) -> str:
    files = "\n".join(f"  {base / ds.name / rel}" for rel in ds.files)
    return (
        f"{ds.name} is not available locally and could not be downloaded ({reason}).\n"
        f"Either connect to the internet, or download {ds.url} elsewhere"
        f"{', extract it' if ds.archive_root else ''} and put these files in place:\n{files}\n"
        f"(or point the {ENV_VAR} environment variable, or the data_dir argument, at a "
        f"folder that holds a '{ds.name}' folder with them)."
    )


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


def _download(url: str, dest: Path, progress: bool = True, timeout: float = 60.0) -> None:
    """Stream ``url`` to ``dest`` with a progress bar."""
    from tqdm import tqdm

    req = urllib.request.Request(url, headers={"User-Agent": "recsys-nn-book"})
    with urllib.request.urlopen(req, timeout=timeout) as resp, open(dest, "wb") as out:
        total = int(resp.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name.split(".")[0], file=sys.stdout,
                  disable=not progress) as bar:
            for block in iter(lambda: resp.read(1 << 16), b""):
                out.write(block)
                bar.update(len(block))


def fetch(name: str, data_dir: str | os.PathLike | None = None, *, progress: bool = True) -> Path:
    """Return the verified folder of dataset ``name``, downloading it if needed.

    Raises :class:`DataError` (or :class:`ChecksumError`) with instructions on failure.
    Nothing is left half-written: downloads go to a temporary file and extraction to a
    temporary folder, renamed into place only after every checksum matched.
    """
    ds = get_dataset(name)
    base = resolve_data_dir(data_dir)
    folder = base / ds.name
    if _has_all_files(folder, ds):
        verify_files(folder, ds)
        _show_notice(ds)
        return folder
    if folder.exists() and any(folder.iterdir()):
        missing = [rel for rel in ds.files if not (folder / rel).is_file()]
        raise DataError(
            f"{folder} exists but lacks {', '.join(missing)}. Delete that folder to download "
            f"a fresh copy, or copy the missing files from {ds.url}."
        )
    try:
        base.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=base, prefix=".write-test-", delete=True)
        probe.close()
    except OSError as exc:
        raise DataError(_missing_message(ds, base, f"{base} is not writable: {exc}")) from None

    if ds.archive_root is None:
        _fetch_files(ds, folder, base, progress)
        _show_notice(ds)
        return folder
    tmp_zip = Path(tempfile.mkstemp(dir=base, prefix=f".{ds.name}-", suffix=".zip.part")[1])
    tmp_dir = Path(tempfile.mkdtemp(dir=base, prefix=f".{ds.name}-extract-"))
    try:
        try:
            _download(ds.url, tmp_zip, progress=progress)
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            raise DataError(_missing_message(ds, base, f"download failed: {exc}")) from None
        if ds.archive_hash is not None:
            algo, expected = ds.archive_hash
            actual = sha256_file(tmp_zip, algo)
            if actual != expected:
                raise ChecksumError(
                    f"downloaded archive {ds.url} failed verification: expected {algo} "
                    f"{expected}, got {actual}. The file was deleted; try again later or "
                    "download it by hand (see the error text for where to put it)."
                )
        try:
            with zipfile.ZipFile(tmp_zip) as zf:
                members = _safe_members(zf)
                zf.extractall(tmp_dir, members=members)
        except zipfile.BadZipFile as exc:
            raise DataError(f"the download of {ds.url} is not a valid zip archive ({exc}).") from None
        extracted = tmp_dir / ds.archive_root
        if not extracted.is_dir():
            raise DataError(f"the archive {ds.url} has no folder {ds.archive_root!r}")
        for rel, expected in ds.files.items():
            path = extracted / rel
            if not path.is_file():
                raise DataError(f"the archive {ds.url} lacks {ds.archive_root}/{rel}")
            _check_download(path, expected, f"{ds.archive_root}/{rel} from {ds.url}")
        if folder.exists():
            folder.rmdir()  # empty (checked above)
        os.replace(extracted, folder)
    finally:
        tmp_zip.unlink(missing_ok=True)
        shutil.rmtree(tmp_dir, ignore_errors=True)
    _show_notice(ds)
    return folder


def _check_download(path: Path, expected: str, what: str) -> None:
    """Raise :class:`ChecksumError` naming ``what`` if ``path``'s sha256 is not ``expected``."""
    actual = sha256_file(path)
    if actual != expected:
        raise ChecksumError(f"{what} failed verification: expected sha256 {expected}, "
                            f"got {actual}. Nothing was kept.")


def _fetch_files(ds: Dataset, folder: Path, base: Path, progress: bool) -> None:
    """Download a dataset published as loose files, verify each, then move the folder in place."""
    tmp_dir = Path(tempfile.mkdtemp(dir=base, prefix=f".{ds.name}-files-"))
    try:
        for rel, expected in ds.files.items():
            target = tmp_dir / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                _download(ds.url + rel, target, progress=progress)
            except (urllib.error.URLError, OSError, TimeoutError) as exc:
                raise DataError(_missing_message(ds, base, f"download of {ds.url + rel} failed: {exc}")) from None
            _check_download(target, expected, f"{rel} from {ds.url + rel}")
        if folder.exists():
            folder.rmdir()  # empty (checked by the caller)
        os.replace(tmp_dir, folder)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def _show_notice(ds: Dataset) -> None:
    if ds.name not in _NOTICE_SHOWN:
        _NOTICE_SHOWN.add(ds.name)
        print(f"{ds.description}.\nLicence: {ds.licence}\nPlease cite: {ds.citation}")


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
