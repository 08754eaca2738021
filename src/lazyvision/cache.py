"""The on-disk cache: embeddings, image facts and finished evaluations.

Everything is keyed by content, so the cache is shared safely between runs, data
sets and run folders:

- ``features/<key>/chunk-*.npz``: embeddings of one backbone configuration, written
  in chunks while extraction runs. Each chunk carries a checksum of its arrays; a
  chunk that fails it is removed with a warning and its images are embedded again.
- ``images.sqlite``: what decoding an image file found (size, mode, perceptual
  hash, the thumbnail the near-duplicate check compares), keyed by the file's
  SHA-256, so a warm run decodes no image again.
- ``results/<key>.json``: a finished evaluation of one backbone on one labelled
  manifest with one set of settings.

Writers take an exclusive lock per entry and publish files by atomic rename, so two
runs on the same cache folder never see a half-written file.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import io
import json
import logging
import math
import os
import secrets
import sqlite3
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lazyvision.images import ImageInfo

logger = logging.getLogger(__name__)

#: Part of every cache key: bump it when the meaning of cached embeddings or
#: results changes, so that an upgrade never serves numbers of older code.
CACHE_VERSION = "3"


def default_cache_dir() -> Path:
    """``$LAZYVISION_CACHE``, else the user's cache folder."""
    configured = os.environ.get("LAZYVISION_CACHE")
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "lazyvision"


def stable_hash(*parts: object) -> str:
    """A short hex digest of JSON-serialisable parts, stable across runs."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Holds an exclusive advisory lock on ``path`` (created if missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_atomic(path: Path, data: bytes) -> None:
    """Writes ``data`` to ``path`` so readers see the old file or the whole new one.

    The file gets the permissions of any new file (``0o666`` less the umask), as
    the report and every other file of a run folder do. An error names ``path``,
    not the temporary file beside it that was being written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        handle, tmp = _create_beside(path)
    except OSError as err:
        raise _naming(err, path) from err
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(err, OSError):
            raise _naming(err, path) from err
        raise


def _create_beside(path: Path) -> tuple[int, str]:
    """Creates a new, hidden file next to ``path``; returns its descriptor and name.

    Unlike ``tempfile.mkstemp``, which makes files only the owner can read, the
    mode is left to the umask.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        name = str(path.parent / f".{path.name}.{secrets.token_hex(4)}")
        try:
            return os.open(name, flags, 0o666), name
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(path))


def _naming(err: OSError, path: Path) -> OSError:
    """The same error, about ``path``."""
    if err.errno is None:
        return err
    return type(err)(err.errno, err.strerror, str(path))


def write_json_atomic(path: Path, value: Any) -> None:
    """Writes ``value`` as indented JSON, atomically."""
    text = json.dumps(value, indent=2, default=_json_default, allow_nan=False)
    write_atomic(path, text.encode())


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in JSON")


class FeatureStore:
    """Embeddings of one backbone configuration, keyed by image digest.

    Args:
        folder: ``CACHE/features/<key>``.

    Example:
        >>> import tempfile
        >>> store = FeatureStore(Path(tempfile.mkdtemp()) / "k")
        >>> store.write_chunk(["ab"], np.ones((1, 3), dtype=np.float32))
        >>> store.load()["ab"].shape
        (3,)
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @property
    def lock_path(self) -> Path:
        return self.folder / ".lock"

    def load(self) -> dict[str, np.ndarray]:
        """Every intact cached embedding; damaged chunks are removed with a warning."""
        embeddings: dict[str, np.ndarray] = {}
        if not self.folder.is_dir():
            return embeddings
        for chunk in sorted(self.folder.glob("chunk-*.npz")):
            loaded = _read_chunk(chunk)
            if loaded is None:
                logger.warning(
                    "cache chunk %s is truncated or corrupt; removed, its images "
                    "will be embedded again",
                    chunk,
                )
                with contextlib.suppress(FileNotFoundError):
                    chunk.unlink()
                continue
            digests, matrix = loaded
            for digest, row in zip(digests, matrix, strict=True):
                embeddings[str(digest)] = row
        return embeddings

    def write_chunk(self, digests: Sequence[str], embeddings: np.ndarray) -> None:
        """Publishes one chunk of embeddings atomically."""
        keys = np.asarray(list(digests), dtype="U64")
        matrix = np.ascontiguousarray(embeddings, dtype=np.float32)
        checksum = _checksum(keys, matrix)
        buffer = io.BytesIO()
        np.savez(buffer, digests=keys, embeddings=matrix, checksum=np.array(checksum))
        write_atomic(self.folder / f"chunk-{checksum[:20]}.npz", buffer.getvalue())


def _checksum(keys: np.ndarray, matrix: np.ndarray) -> str:
    digest = hashlib.sha256(keys.tobytes())
    digest.update(str(matrix.shape).encode())
    digest.update(matrix.tobytes())
    return digest.hexdigest()


def _read_chunk(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            keys, matrix = data["digests"], data["embeddings"]
            stored = str(data["checksum"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    if matrix.ndim != 2 or len(keys) != len(matrix):
        return None
    if _checksum(keys, matrix) != stored:
        return None
    return keys, matrix


# Facts of older versions live in a table "facts" whose rows have no thumbnail.
# They are left alone, not read: an older version sharing the cache folder still
# writes its six columns there, and an image it knows is decoded here once more.
_FACTS_TABLE = "facts_v2"
_FACTS_COLUMNS = "digest, width, height, mode, format, phash, thumbnail"


class ImageFacts:
    """What decoding found for each image content, in ``CACHE/images.sqlite``.

    Args:
        path: The sqlite file, created on first use.

    Example:
        >>> import tempfile
        >>> facts = ImageFacts(Path(tempfile.mkdtemp()) / "images.sqlite")
        >>> facts.put([ImageInfo("ab", 2, 2, "RGB", "PNG", 7, bytes(768))])
        >>> facts.get(["ab", "cd"])["ab"].phash
        7
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, timeout=60)
        connection.execute(
            f"CREATE TABLE IF NOT EXISTS {_FACTS_TABLE} (digest TEXT PRIMARY KEY,"
            " width INTEGER, height INTEGER, mode TEXT, format TEXT, phash TEXT,"
            " thumbnail BLOB)"
        )
        return connection

    def get(self, digests: Sequence[str]) -> dict[str, ImageInfo]:
        """The known facts among ``digests``."""
        if not digests:
            return {}
        found: dict[str, ImageInfo] = {}
        with contextlib.closing(self._connect()) as connection:
            wanted = list(dict.fromkeys(digests))
            for start in range(0, len(wanted), 500):
                batch = wanted[start : start + 500]
                marks = ",".join("?" * len(batch))
                rows = connection.execute(
                    f"SELECT {_FACTS_COLUMNS} FROM {_FACTS_TABLE}"
                    f" WHERE digest IN ({marks})",
                    batch,
                )
                for digest, width, height, mode, fmt, phash, small in rows:
                    found[digest] = ImageInfo(
                        digest=digest,
                        width=width,
                        height=height,
                        mode=mode,
                        format=fmt,
                        phash=int(phash, 16),
                        thumbnail=None if small is None else bytes(small),
                    )
        return found

    def put(self, infos: Sequence[ImageInfo]) -> None:
        """Records facts; existing digests are left as they are."""
        if not infos:
            return
        rows = [
            (
                i.digest,
                i.width,
                i.height,
                i.mode,
                i.format,
                format(i.phash, "016x"),
                i.thumbnail,
            )
            for i in infos
        ]
        with contextlib.closing(self._connect()) as connection, connection:
            connection.executemany(
                f"INSERT OR IGNORE INTO {_FACTS_TABLE} ({_FACTS_COLUMNS})"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )


class ResultStore:
    """Finished evaluations, one JSON file per key under ``CACHE/results``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def get(self, key: str) -> dict[str, Any] | None:
        path = self.folder / f"{key}.json"
        try:
            value = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            logger.warning("cached result %s is unreadable; evaluating again", path)
            return None
        return value if isinstance(value, dict) else None

    def put(self, key: str, value: dict[str, Any]) -> None:
        write_json_atomic(self.folder / f"{key}.json", value)


def json_safe(value: Any) -> Any:
    """JSON-safe: NaN and infinities become None, numpy scalars plain numbers."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
