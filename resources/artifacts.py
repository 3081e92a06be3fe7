"""Where every persisted asset lives on disk, and how it is written and read back.

The store is given a table of artifacts (asset key -> path, kind and the dvc.yaml stage that writes it);
the pipeline's table is derived from the stage table in assets/stages.py. Plain Python: no dagster.

Writes are atomic: a dataset is written (whole, or streamed table by table) to a temporary file beside
its target and renamed over it; a model directory is built in a temporary directory and swapped in. A
failed run therefore leaves the last good version in place.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import pyarrow as pa
    from datasets import Dataset

Kind = Literal["dataset", "directory", "json"]


@dataclass(frozen=True)
class Artifact:
    key: str
    path: str  # relative to the project root
    kind: Kind
    stage: str  # the dvc.yaml stage that writes it


class MissingArtifactError(FileNotFoundError):
    """An upstream asset has not been materialized yet."""


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
        path = self.path(key)
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

    def write_datasets(self, datasets: dict[str, Dataset]) -> None:
        """Write the datasets of one stage together: every file is complete before any replaces its
        previous version, so a failure midway leaves all the previous versions in place."""
        import pyarrow.parquet as pq

        with contextlib.ExitStack() as stack:
            staged = []
            for key, dataset in datasets.items():
                # A filtered or shuffled Dataset keeps an indices mapping; write the rows it selects.
                table = (
                    dataset.flatten_indices().data.table
                    if dataset._indices is not None
                    else dataset.data.table
                )
                tmp = stack.enter_context(_staged_file(self.path(key)))
                pq.write_table(table, tmp)
                staged.append((tmp, self.path(key)))
            for tmp, target in staged:
                os.replace(tmp, target)

    def write_dataset_stream(self, key: str, schema: pa.Schema, tables: Iterable[pa.Table]) -> Path:
        """Write ``tables`` (each of ``schema``, one Parquet row group or more per table) as the dataset of
        ``key``, one table in memory at a time, then rename the file over the previous version. An
        exception from ``tables`` leaves the previous version in place and no partial file."""
        import pyarrow.parquet as pq

        target = self.path(key)
        with _staged_file(target) as tmp:
            with pq.ParquetWriter(tmp, schema) as writer:
                for table in tables:
                    writer.write_table(table)
            os.replace(tmp, target)
        return target

    def read_dataset(self, key: str) -> Dataset:
        import pyarrow.parquet as pq
        from datasets import Dataset, Features

        # Read into memory rather than through datasets' cache: no copies pile up in ~/.cache.
        table = pq.read_table(self.require(key))
        # Parquet names list items "element" where datasets writes "item": cast back so a dataset that
        # is read and written again gives the same bytes.
        return Dataset(table.cast(Features.from_arrow_schema(table.schema).arrow_schema))

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


@contextlib.contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """Yield a staging directory beside ``target``; on success it replaces ``target`` by renames, so no
    reader sees a half-written directory. On error the staging directory goes and ``target`` stays."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    staging.chmod(0o755)  # mkdtemp makes it private; the directory is for everyone
    # A directory cannot be renamed over a non-empty one, so the old one moves aside first.
    previous = None
    if target.exists():
        previous = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        target.rename(previous / target.name)
    staging.rename(target)
    if previous is not None:
        shutil.rmtree(previous, ignore_errors=True)


@contextlib.contextmanager
def _staged_file(target: Path) -> Iterator[Path]:
    """A temporary file beside ``target``; the caller renames it over ``target``, else it is removed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    tmp.chmod(0o644)  # mkstemp makes it private
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def _atomic_file(target: Path) -> Iterator[Path]:
    with _staged_file(target) as tmp:
        yield tmp
        os.replace(tmp, target)
