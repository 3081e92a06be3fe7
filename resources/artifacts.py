"""Where every persisted asset lives on disk, and how it is written and read back.

The store is given a table of artifacts (asset key -> path, kind and the dvc.yaml stage that writes it);
the pipeline's table is derived from the stage table in assets/stages.py. Plain Python: no dagster.

Writes survive a kill at any point (SIGKILL, power to the process, OOM), so readers see either the last
good version or the new complete one, never a half-written output or a mismatched pair:

- one file: written to a temporary file beside its target and renamed over it;
- several files of one stage (clean_examples + rejected_examples, the three splits): every new file is
  written completely, the current files are hard-linked aside, a commit journal naming both is written,
  then the renames; removing the journal is the commit. A journal left by a dead writer means the commit
  never finished: the store rolls every file back to the previous version before anyone reads it;
- a directory: built in a staging directory and exchanged with the target in one atomic
  ``renameat2(RENAME_EXCHANGE)`` on Linux, so the path is never absent; elsewhere by two renames, and a
  kill between them is repaired (the previous version renamed back) on the next access.

Temporary names carry their writer's pid and start time, so :meth:`ArtifactStore.recover` (run at the
start of every run) removes what killed runs left and keeps what a live run is writing. Files and
directories get the modes the user's umask gives (``tempfile`` would make them private).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from resources.processes import failpoint, owner_alive, owner_token

if TYPE_CHECKING:
    import pyarrow as pa
    from datasets import Dataset

Kind = Literal["dataset", "directory", "json"]
# Metadata a reader records of each input (the IO manager, on a step's "loaded input" event): the file
# it read and the DVC md5 of the bytes read.
READ_PATH = "read_path"
READ_MD5 = "read_dvc_md5"


@dataclass(frozen=True)
class Artifact:
    key: str
    path: str  # relative to the project root
    kind: Kind
    stage: str  # the dvc.yaml stage that writes it


class MissingArtifactError(FileNotFoundError):
    """An upstream asset has not been materialized yet."""


class WriteInProgressError(RuntimeError):
    """A live process is committing a stage's outputs right now; read them once it is done."""


def dvc_md5(path: Path) -> str:
    """The md5 DVC records for ``path`` in dvc.lock: of the bytes for a file; for a directory, of the
    sorted JSON listing of its files' md5s, suffixed '.dir'. It doubles as the Dagster data version."""
    if path.is_file():
        return _file_md5(path)
    entries = [
        {"md5": _file_md5(p), "relpath": p.relative_to(path).as_posix()}
        for p in sorted(path.rglob("*"))
        if p.is_file()
    ]
    entries.sort(key=lambda e: e["relpath"])
    listing = json.dumps(entries, sort_keys=True).encode("utf-8")
    return hashlib.md5(listing).hexdigest() + ".dir"


def _file_md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ArtifactStore:
    """Reads and writes the artifacts of one project root; ``artifacts`` maps each asset key to where
    and how it is stored."""

    def __init__(self, root: Path, artifacts: Mapping[str, Artifact]) -> None:
        self.root = Path(root)
        self.artifacts = artifacts

    def artifact(self, key: str) -> Artifact:
        try:
            return self.artifacts[key]
        except KeyError:
            raise KeyError(f"No artifact is declared for asset {key!r}; add it to the stage table.") from None

    def path(self, key: str) -> Path:
        return self.root / self.artifact(key).path

    def require(self, key: str) -> Path:
        """The path of ``key``'s current version, after undoing any write of its stage that a killed
        process left unfinished. Raises MissingArtifactError when it was never written and
        WriteInProgressError while a live process commits that stage."""
        self._finish_interrupted(self.artifact(key).stage)
        path = self.path(key)
        if not path.exists():
            restore_swapped_directory(path)
        if not path.exists():
            raise MissingArtifactError(
                f"{path} does not exist: materialize asset '{key}' first (or run the whole job)."
            )
        return path

    def md5(self, key: str) -> str:
        return dvc_md5(self.require(key))

    # datasets -----------------------------------------------------------------------------------
    def write_dataset(self, key: str, dataset: Dataset) -> Path:
        self.write_datasets({key: dataset})
        return self.path(key)

    def write_dataset_stream(self, key: str, schema: pa.Schema, tables: Iterable[pa.Table]) -> Path:
        """Write ``tables`` (each of ``schema``, one Parquet row group or more per table) as the dataset of
        ``key``, one table in memory at a time, then rename the file over the previous version. An
        exception from ``tables`` leaves the previous version in place and no partial file."""
        import pyarrow.parquet as pq

        target = self.path(key)
        self._finish_interrupted(self.artifact(key).stage)
        with _staged_file(target) as tmp:
            with pq.ParquetWriter(tmp, schema) as writer:
                for table in tables:
                    writer.write_table(table)
            os.replace(tmp, target)
        return target

    def write_datasets(self, datasets: dict[str, Dataset]) -> None:
        """Write the datasets of one stage together: they become visible all at once or not at all,
        whatever point a kill hits (see the module docstring)."""
        import pyarrow.parquet as pq

        [stage] = {self.artifact(key).stage for key in datasets}
        self._finish_interrupted(stage)
        with contextlib.ExitStack() as stack:
            staged: dict[Path, Path] = {}
            for key, dataset in datasets.items():
                # A filtered or shuffled Dataset keeps an indices mapping; write the rows it selects.
                table = (
                    dataset.flatten_indices().data.table
                    if dataset._indices is not None
                    else dataset.data.table
                )
                tmp = stack.enter_context(_staged_file(self.path(key)))
                pq.write_table(table, tmp)
                staged[tmp] = self.path(key)
                failpoint("datasets:staged-one")
            if len(staged) == 1:
                [(tmp, target)] = staged.items()
                os.replace(tmp, target)
                return
            self._commit(stage, staged)

    def _journal(self, stage: str) -> Path:
        first = next(a for a in self.artifacts.values() if a.stage == stage)
        return (self.root / first.path).parent / f".{stage}.commit.json"

    def _commit(self, stage: str, staged: dict[Path, Path]) -> None:
        """Replace several files as one: backups, journal, renames, then removing the journal commits."""
        entries = []
        for tmp, target in staged.items():
            backup = None
            if target.exists():
                backup = _temporary_name(target, "old")
                try:
                    os.link(target, backup)  # the previous version stays reachable until the commit
                except OSError:  # a file system without hard links
                    shutil.copy2(target, backup)
            entries.append({"target": str(target), "staged": str(tmp), "backup": backup and str(backup)})
        failpoint("datasets:backed-up")
        journal = self._journal(stage)
        with _atomic_file(journal) as tmp:
            tmp.write_text(json.dumps({"writer": owner_token(), "files": entries}), encoding="utf-8")
        failpoint("datasets:journal-written")
        try:
            for number, entry in enumerate(entries, 1):
                os.replace(entry["staged"], entry["target"])
                failpoint(f"datasets:renamed-{number}")
        except BaseException:
            _roll_back(entries)
            journal.unlink(missing_ok=True)
            raise
        journal.unlink()  # the commit point
        failpoint("datasets:committed")
        for entry in entries:
            if entry["backup"]:
                Path(entry["backup"]).unlink(missing_ok=True)

    def _finish_interrupted(self, stage: str) -> None:
        """Roll a stage's outputs back to their previous versions when a killed writer left its commit
        journal; refuse while the writer still runs."""
        journal = self._journal(stage)
        try:
            record = json.loads(journal.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError):
            # Journals are written atomically, so a torn one is not ours to interpret.
            raise WriteInProgressError(
                f"{journal} cannot be read: delete it and re-run stage '{stage}'."
            ) from None
        if owner_alive(record["writer"]):
            pid = record["writer"].split("-")[0]
            raise WriteInProgressError(
                f"Stage '{stage}' is writing its outputs right now (process {pid}); "
                "read them when its run has finished."
            )
        _roll_back(record["files"])
        journal.unlink(missing_ok=True)

    def recover(self) -> list[str]:
        """Undo what killed runs left: unfinished stage commits are rolled back, a directory left absent
        by a swap is restored, and their temporary files and directories are removed. Returns what was
        done, one line per item, for the run's log; what live writers hold is left alone."""
        done = []
        for stage in dict.fromkeys(a.stage for a in self.artifacts.values()):
            journal = self._journal(stage)
            if journal.exists():
                with contextlib.suppress(WriteInProgressError):
                    self._finish_interrupted(stage)
                    done.append(f"rolled back the unfinished write of stage '{stage}'")
            done.extend(f"removed {path}" for path in remove_leftovers(journal))
        for artifact in self.artifacts.values():
            target = self.root / artifact.path
            if not target.exists() and restore_swapped_directory(target):
                done.append(f"restored {target} from an interrupted swap")
            done.extend(f"removed {path}" for path in remove_leftovers(target))
        return done

    def read_dataset(self, key: str) -> Dataset:
        import pyarrow.parquet as pq

        # Read into memory rather than through datasets' cache: no copies pile up in ~/.cache.
        return _dataset_from_table(pq.read_table(self.require(key)))

    # json ---------------------------------------------------------------------------------------
    def write_json(self, key: str, value: dict[str, Any]) -> Path:
        target = self.path(key)
        with _atomic_file(target) as tmp:
            tmp.write_text(json.dumps(value, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
        return target

    def read_json(self, key: str) -> dict[str, Any]:
        return json.loads(self.require(key).read_text(encoding="utf-8"))

    # directories --------------------------------------------------------------------------------
    def load(self, key: str) -> Any:
        """The value downstream assets receive: a Dataset, a directory Path, or a dict."""
        kind = self.artifact(key).kind
        if kind == "dataset":
            return self.read_dataset(key)
        if kind == "json":
            return self.read_json(key)
        return self.require(key)

    def load_with_md5(self, key: str) -> tuple[Any, str]:
        """What :meth:`load` returns, and the DVC md5 of exactly the bytes it was made from (a file is
        read once, hashed and parsed from memory), so a reader can record what it read even if the
        file is replaced a moment later. A directory is hashed as it is when loaded."""
        kind = self.artifact(key).kind
        path = self.require(key)
        if kind == "directory":
            return path, dvc_md5(path)
        data = path.read_bytes()
        md5 = hashlib.md5(data).hexdigest()
        if kind == "json":
            return json.loads(data), md5
        import pyarrow as pa
        import pyarrow.parquet as pq

        return _dataset_from_table(pq.read_table(pa.BufferReader(data))), md5


def _dataset_from_table(table: Any) -> Dataset:
    from datasets import Dataset, Features

    # Parquet names list items "element" where datasets writes "item": cast back so a dataset that is
    # read and written again gives the same bytes.
    return Dataset(table.cast(Features.from_arrow_schema(table.schema).arrow_schema))


def _roll_back(entries: list[dict[str, Any]]) -> None:
    """Put every file of an unfinished commit back to its previous version (or remove it when it did not
    exist before), and drop the staged files."""
    for entry in entries:
        target = Path(entry["target"])
        if entry["backup"] and Path(entry["backup"]).exists():
            os.replace(entry["backup"], target)
        elif not entry["backup"]:
            target.unlink(missing_ok=True)
        Path(entry["staged"]).unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """Yield a staging directory beside ``target``; on success it replaces ``target`` atomically (see the
    module docstring), so no reader sees a half-written or absent directory. On error the staging
    directory goes and ``target`` stays."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = _temporary_name(target, "tmp")
    staging.mkdir()
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    apply_umask(staging)
    failpoint("directory:staged")
    if not target.exists():
        staging.rename(target)
        return
    if _exchange(staging, target):
        failpoint("directory:exchanged")
        shutil.rmtree(staging, ignore_errors=True)  # it now holds the previous version
        return
    # No atomic exchange here: move the old one aside, then the new one in. A kill between the two
    # renames is repaired by restore_swapped_directory on the next access.
    previous = _temporary_name(target, "old")
    previous.mkdir()
    target.rename(previous / target.name)
    failpoint("directory:moved-aside")
    staging.rename(target)
    shutil.rmtree(previous, ignore_errors=True)


def restore_swapped_directory(target: Path) -> bool:
    """When ``target`` is absent because a swap was killed between its renames, rename the previous
    version back; returns whether it did."""
    if target.exists():
        return False
    for aside in sorted(target.parent.glob(f".{target.name}.old-*")):
        previous = aside / target.name
        if previous.is_dir() and not owner_alive(_owner_of(aside, target)):
            previous.rename(target)
            shutil.rmtree(aside, ignore_errors=True)
            return True
    return False


def remove_leftovers(target: Path) -> list[Path]:
    """Remove temporary files and directories beside ``target`` whose writer process is gone (a killed
    run's staged outputs and backups); returns what was removed."""
    removed = []
    if not target.parent.is_dir():
        return removed
    for path in sorted(target.parent.glob(f".{target.name}.*")):
        if owner_alive(_owner_of(path, target)):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def apply_umask(path: Path) -> None:
    """Give ``path`` (and everything under a directory) the modes a plain ``open``/``mkdir`` would give
    under the user's umask: temporary files and directories are created private (0600/0700), which
    would leave weights and datasets unreadable to the rest of a team."""
    mask = current_umask()
    paths = [path, *path.rglob("*")] if path.is_dir() else [path]
    for item in paths:
        if item.is_symlink():
            continue
        executable = item.is_dir() or item.stat().st_mode & 0o100
        item.chmod((0o777 if executable else 0o666) & ~mask)


def current_umask() -> int:
    """The process umask (read from /proc on Linux; elsewhere set and restored)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _temporary_name(target: Path, kind: Literal["tmp", "old"]) -> Path:
    """``.<name>.<kind>-<writer pid>-<writer start>-<random>`` beside ``target``."""
    return target.parent / f".{target.name}.{kind}-{owner_token()}-{secrets.token_hex(4)}"


def _owner_of(path: Path, target: Path) -> str:
    """The writer token in a temporary name (``""`` for names of another shape: an older version's)."""
    rest = path.name[len(target.name) + 2 :]
    kind, _, token = rest.partition("-")
    if kind not in ("tmp", "old"):
        return ""
    return token.rsplit("-", 1)[0]


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux renameat2 RENAME_EXCHANGE); False where the system or
    file system does not offer it."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    result = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


@contextlib.contextmanager
def _staged_file(target: Path) -> Iterator[Path]:
    """A temporary file beside ``target``; the caller renames it over ``target``, else it is removed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_name(target, "tmp")
    tmp.touch(mode=0o666)  # open() applies the umask, as for any file the user writes
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def _atomic_file(target: Path) -> Iterator[Path]:
    with _staged_file(target) as tmp:
        yield tmp
        os.replace(tmp, target)
