"""The DVC cache's part of retention: which cache objects are in use, what the rest weighs, and their
removal through DVC's own garbage collector.

Why not ``dvc gc`` itself: its scope is git revisions (``--workspace``, ``--all-branches``,
``--all-tags``, ``--all-commits``, ``--rev``), the dvc.lock files it finds there. A registry version's
data is named by the dvc.lock of the run that made it, which each later run overwrites and nobody
commits, so ``dvc gc --workspace`` would delete the splits of every version but the newest, and
``--all-commits`` keeps only what happened to be committed; ``dvc gc`` cannot be given more objects to
keep. So this module calls the two pieces ``dvc gc`` is made of: ``Repo.used_objs`` with the same
scope flags (what ``dvc gc`` would keep), and ``dvc_data``'s ``gc`` over the cache with that set plus
the md5s the registry's kept versions need, under DVC's repository lock.

The default remote is left alone: it is the archive ``restore`` falls back to (prune it with
``dvc gc --cloud`` at a scope of your choosing).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCOPE_FLAGS = {
    "workspace": {},
    "all_branches": {"all_branches": True},
    "all_tags": {"all_tags": True},
    "all_commits": {"all_commits": True},
}


@dataclass
class CacheObject:
    """One object of the local DVC cache: a file's content, or a directory listing (``.dir``)."""

    md5: str
    size: int


@dataclass
class CachePlan:
    """The cache split into what stays (md5 -> why) and what goes, with every object's size."""

    objects: dict[str, CacheObject]
    keep: dict[str, str]

    @property
    def unused(self) -> list[CacheObject]:
        return [obj for md5, obj in sorted(self.objects.items()) if md5 not in self.keep]


@contextlib.contextmanager
def _repo(root: Path) -> Iterator[Any]:
    from dvc.repo import Repo

    with contextlib.chdir(root), Repo(str(root)) as repo:
        yield repo


def _expand(odb: Any, md5s: Mapping[str, str]) -> dict[str, str]:
    """The md5s plus, for each directory object (``.dir``) the cache holds, the md5s of its files."""
    from dvc_data.hashfile.hash_info import HashInfo
    from dvc_data.hashfile.tree import Tree

    expanded = dict(md5s)
    for md5, why in md5s.items():
        if md5.endswith(".dir") and Path(odb.oid_to_path(md5)).exists():
            tree = Tree.load(odb, HashInfo("md5", md5))
            for _, _, hash_info in tree:
                if hash_info is not None and hash_info.value:
                    expanded.setdefault(hash_info.value, why)
    return expanded


def _in_use(repo: Any, scope: str) -> dict[str, str]:
    """md5 -> why for what ``dvc gc`` at ``scope`` would keep (directory objects expanded)."""
    why = "named by dvc.lock" if scope == "workspace" else f"named by dvc.lock ({scope.replace('_', ' ')})"
    used: dict[str, str] = {}
    for hash_infos in repo.used_objs(**SCOPE_FLAGS[scope]).values():
        for hash_info in hash_infos:
            if hash_info.name == "md5" and hash_info.value:
                used.setdefault(hash_info.value, why)
    return used


def plan_cache(root: Path, scope: str, extra: Mapping[str, str]) -> CachePlan:
    """What stays in ``root``'s local DVC cache: the objects ``dvc gc`` at ``scope`` keeps, plus
    ``extra`` (md5 -> why: the registry's kept versions, kept merged models), directory objects with
    their files. Nothing is changed."""
    with _repo(root) as repo:
        odb = repo.cache.local
        keep = _expand(odb, {**extra, **_in_use(repo, scope)})
        objects = {}
        for md5 in odb.all():
            path = Path(odb.oid_to_path(md5))
            with contextlib.suppress(FileNotFoundError):
                objects[md5] = CacheObject(md5, path.stat().st_size)
    return CachePlan(objects, keep)


def directory_files(root: Path, md5: str) -> list[str]:
    """The md5s of the files a directory object lists ([] when the cache lacks it)."""
    with _repo(root) as repo:
        return [m for m in _expand(repo.cache.local, {md5: ""}) if m != md5]


def prune_cache(root: Path, scope: str, extra: Mapping[str, str]) -> list[str]:
    """Delete every local cache object neither ``dvc gc`` at ``scope`` nor ``extra`` keeps; returns the
    md5s removed. What is in use is computed again under DVC's repository lock and the project's commit
    lock (``resources/dvc.py``), so an output committed since the plan was made is never removed."""
    from dvc_data.hashfile.gc import gc
    from dvc_data.hashfile.hash_info import HashInfo
    from filelock import FileLock

    (root / ".dvc" / "tmp").mkdir(parents=True, exist_ok=True)
    commit_lock = FileLock(str(root / ".dvc" / "tmp" / "dagster-commit.lock"), timeout=600)
    with commit_lock, _repo(root) as repo, repo.lock:
        odb = repo.cache.local
        keep = _expand(odb, {**extra, **_in_use(repo, scope)})
        before = set(odb.all())
        gc(odb, [HashInfo("md5", md5) for md5 in keep], shallow=True)
        after = set(odb.all())
    return sorted(before - after)
