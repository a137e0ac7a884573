"""Write outputs so that a failure never leaves a half-written file behind."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pandas as pd


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
    stage = Path(tempfile.mkdtemp(prefix=f".tmp-{first.name}-", dir=first.parent))
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
