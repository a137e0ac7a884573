"""Write outputs so that a failure never leaves a half-written file behind."""

from __future__ import annotations

import contextlib
import glob
import gzip
import logging
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import pandas as pd

log = logging.getLogger("vitudip.io")


#: Between a target's name and the random part of its staging folder's name.
STAGE_MARK = "-staged-"


def remove_stale_stages(target: Path) -> list[Path]:
    """Remove the staging folders an earlier, killed writer of ``target`` left beside it.

    A killed job cannot clean up (tens of GB for a gather on UK Biobank). Snakemake runs one job per output
    at a time, so when the target is written again, any staging folder of it is left over.

    Returns:
        the folders removed.
    """
    stale = [path for path in target.parent.glob(f".tmp-{glob.escape(target.name)}{STAGE_MARK}*") if path.is_dir()]
    for path in stale:
        log.warning("removing %s, left by an earlier writer of %s that was stopped", path, target)
        shutil.rmtree(path, ignore_errors=True)
    return stale


def require_free_space(target: str | os.PathLike, needed: int, what: str) -> None:
    """Refuse to start writing about ``needed`` bytes at ``target`` when its file system has less free: a full disk
    found at the start names what is needed, one found midway only what was being written.

    Args:
        target: the output about to be written (it need not exist yet).
        needed: the bytes it will take, about.
        what: the stage, for the message.

    Raises:
        ValueError: naming the nearest existing folder, the bytes needed and those free.
    """
    path = Path(target)
    folder = next(p for p in (path, *path.parents) if p.is_dir())
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise ValueError(f"{what} needs about {needed / 1e9:.2f} GB ({needed:,} bytes) for {path}, but {folder} has "
                         f"{free / 1e9:.2f} GB ({free:,} bytes) free: free space there, or point `results` at a larger "
                         "file system, and rerun")


@contextlib.contextmanager
def staged_outputs(targets: dict[str, str | os.PathLike]) -> Iterator[dict[str, Path]]:
    """Stage several outputs in a temporary folder and move them into place together.

    The temporary folder sits beside the first target so that the final
    ``os.replace`` is a rename on the same file system. If the body raises,
    the staging folder is removed and no target is touched.

    Args:
        targets: name -> final path (file or folder).

    Yields:
        name -> staging path to write to (its parent folder exists).
    """
    finals = {name: Path(path) for name, path in targets.items()}
    first = next(iter(finals.values()))
    first.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_stages(first)
    stage = Path(tempfile.mkdtemp(prefix=f".tmp-{first.name}{STAGE_MARK}", dir=first.parent))
    try:
        # keep final names where unique, so a writer of sibling files (prefix.bed/.bim/.fam) stages them together
        counts = Counter(path.name for path in finals.values())
        staged = {
            name: stage / (path.name if counts[path.name] == 1 else f"{i}-{path.name}")
            for i, (name, path) in enumerate(finals.items())
        }
        yield staged
        for name, final in finals.items():
            src = staged[name]
            if not src.exists():
                raise FileNotFoundError(f"output '{name}' was not written ({final})")
            final.parent.mkdir(parents=True, exist_ok=True)
            if final.is_dir() and not final.is_symlink():
                shutil.rmtree(final)
            os.replace(src, final)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def write_tsv(frame: pd.DataFrame, path: str | os.PathLike, **kwargs) -> None:
    """Write a tab-separated table atomically (temporary file, then rename).

    Floats get six significant digits unless ``float_format`` says otherwise.
    """
    kwargs.setdefault("float_format", "%.6g")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}")
    try:
        frame.to_csv(tmp, sep="\t", index=False, **kwargs)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class StagedGzipWriter:
    """A gzip file written in pieces to a hidden temporary file beside ``path``, renamed into place on commit.

    :meth:`commit` renames it, :meth:`discard` (or leaving a ``with`` block by an
    exception) removes it, so ``path`` is never half written. Subclasses write
    their rows through ``self._handle``.

    Args:
        path: final ``.gz`` path; its folder is created.
        compresslevel: gzip level (1 is fast; these files are written once and read a few times).
    """

    def __init__(self, path: str | os.PathLike, compresslevel: int = 1) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f".tmp-{self.path.name}-{os.getpid()}-{id(self)}")
        # mtime=0 keeps the bytes identical between runs on the same data.
        self._handle = gzip.GzipFile(self._tmp, "wb", compresslevel=compresslevel, mtime=0)

    def commit(self) -> Path:
        """Close the file and move it to its final path; returns that path."""
        self._handle.close()
        os.replace(self._tmp, self.path)
        return self.path

    def discard(self) -> None:
        """Close and delete the temporary file."""
        self._handle.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()
