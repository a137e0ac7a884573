"""One reader for the pipeline's tables: the file, the columns it must have, their kinds.

Every table a stage reads (its own inputs from the user, or another stage's
output) is described once by a :class:`Table`; its errors name the file, the
column and the line (the header is line 1) and say what to do.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from vitudip.io.atomic import write_tsv

#: Cells that mean "missing" in a number column (R's NA, pandas' empty cell).
MISSING = ("NA", "")


def line_number(position: int) -> int:
    """Line of a data row in its file: the header is line 1."""
    return int(position) + 2


def match_without_zeros(ids: Sequence[str], known: Sequence[str]) -> tuple[str, str] | None:
    """An ID of ``ids`` that is not in ``known`` but matches one of it once leading zeros are stripped from both.

    A table saved through a spreadsheet loses the leading zeros of numeric-looking IDs; its IDs then match
    no other table's, with no other sign of why.

    Args:
        ids: the IDs of one table.
        known: the IDs they should match (another table's).

    Returns:
        (the ID of ``ids``, the ID of ``known`` it stands for), the first such pair, or None.
    """
    exact = set(known)
    stripped: dict[str, str] = {}
    for iid in known:
        stripped.setdefault(iid.lstrip("0"), iid)
    for iid in ids:
        if iid in exact or not iid.lstrip("0"):
            continue
        match = stripped.get(iid.lstrip("0"))
        if match is not None:
            return iid, match
    return None


@dataclass(frozen=True)
class Table:
    """A table contract: a header line, then one row per line (tab-separated unless ``sep`` says otherwise).

    Columns not named here are read with pandas' type inference (or as text when not
    ``infer_others``), ``NA`` and empty cells as missing.

    Args:
        what: what the table is, for messages (``QC table``, ``covariates file``).
        required: columns it must have.
        text: columns kept as text (IDs keep leading zeros; a missing cell is ``""``).
        numbers: columns that must be numbers (``NA`` or an empty cell is NaN).
        integers: columns that must hold a whole number on every line.
        unique: a text column whose values must be present and must not repeat (the subject ID of a sheet).
        writer: what writes the file, for the not-found message (``the preprocess stage``).
        sep: the field separator (a single space for REGENIE's reports).
        strip: strip blanks around text cells (a user's sheet); off for large machine-written files.
        infer_others: parse undeclared columns as pandas infers them; False keeps them as text (a user's
            covariates, where ``01`` may be a centre code).
    """

    what: str
    required: tuple[str, ...] = ()
    text: tuple[str, ...] = ()
    numbers: tuple[str, ...] = ()
    integers: tuple[str, ...] = ()
    unique: str | None = None
    writer: str | None = None
    sep: str = "\t"
    strip: bool = True
    infer_others: bool = True

    def _name(self, path: Path) -> str:
        return f"{self.what} {path}"

    def header(self, path: str | os.PathLike) -> list[str]:
        """The column names on the first line, after checking the file exists, is tab-separated and has
        every required column.

        Raises:
            FileNotFoundError: no such file.
            ValueError: empty, comma-separated, or a required column is missing.
        """
        path = Path(path)
        if not path.is_file():
            made = f": run {self.writer} first" if self.writer else ""
            raise FileNotFoundError(f"{self._name(path)} not found{made}")
        opener = gzip.open if path.name.endswith(".gz") else open
        # utf-8-sig: a byte-order mark (spreadsheet exports write one) is not part of the first column's name
        with opener(path, "rt", encoding="utf-8-sig", errors="replace") as fh:
            first = fh.readline().rstrip("\r\n")
        if not first:
            raise ValueError(f"{self._name(path)} is empty: it needs a header line with {', '.join(self.required)}")
        columns = first.split(self.sep)
        missing = [c for c in self.required if c not in columns]
        if missing:
            if self.sep == "\t" and len(columns) == 1 and ("," in first or " " in first):
                sep = "comma" if "," in first else "space"
                raise ValueError(f"{self._name(path)} is {sep}-separated; it must be tab-separated (TSV), "
                                 f"with column(s) {', '.join(self.required)}")
            raise ValueError(f"{self._name(path)} lacks column(s) {', '.join(missing)}"
                             f"; available: {', '.join(columns)}")
        return columns

    def read(self, path: str | os.PathLike, columns: Sequence[str] | None = None,
             allow_empty: bool = True, text_only: bool = False) -> pd.DataFrame:
        """The table, each declared column of its kind.

        Args:
            path: the file.
            columns: read only these (the required ones are always checked); None: all.
            allow_empty: accept a header with no data lines.
            text_only: every cell as written, ``""`` when empty (for a caller that parses and names bad cells
                itself).

        Raises:
            FileNotFoundError: no such file.
            ValueError: a missing column, a cell of the wrong kind, a repeated ``unique`` value or, when not
                ``allow_empty``, no data line; the message names the file, column and line.
        """
        path = Path(path)
        present = self.header(path)
        if text_only:
            frame = pd.read_csv(path, sep=self.sep, usecols=columns, dtype=str, keep_default_na=False,
                                encoding="utf-8-sig")
            return self._checked(frame, path, allow_empty)
        options, converted = self._parse_options(path, present, columns)
        try:
            frame = pd.read_csv(path, **options)
        except ValueError:
            self._name_bad_cell(path, converted)
            raise
        return self._checked(self._kinds(frame, path, converted), path, allow_empty)

    def read_chunks(self, path: str | os.PathLike, columns: Sequence[str], chunk_rows: int) -> Iterator[pd.DataFrame]:
        """The table in chunks of rows, each declared column of its kind (as :meth:`read`), in ``columns``' order.

        For the machine-written tables too long to hold (the joint file at 10 M variants): memory is one
        chunk's.

        Args:
            path: the file.
            columns: the columns wanted (the required ones are checked in the header).
            chunk_rows: rows per chunk (at most).

        Raises:
            FileNotFoundError: no such file.
            ValueError: a missing column or a cell of the wrong kind (names the file, column and line).
        """
        path = Path(path)
        options, converted = self._parse_options(path, self.header(path), columns)
        try:
            with pd.read_csv(path, chunksize=chunk_rows, **options) as reader:
                for frame in reader:
                    yield self._kinds(frame, path, converted)[list(columns)]
        except ValueError:
            self._name_bad_cell(path, converted)
            raise

    def _parse_options(self, path: Path, present: list[str], columns: Sequence[str] | None
                       ) -> tuple[dict, list[str]]:
        """pandas' read_csv options for ``columns`` of a file whose header is ``present``, and the columns that
        must be numbers (the declared numbers and integers among them)."""
        if columns is not None:
            absent = [c for c in columns if c not in present]
            if absent:
                raise ValueError(f"{self._name(path)} lacks column(s) {', '.join(absent)}"
                                 f"; available: {', '.join(present)}")
        # in file order, as pandas returns them
        wanted = [c for c in present if c in {*self.required, *columns}] if columns is not None else present
        text = [c for c in wanted if c in self.text or c == self.unique]
        converted = [c for c in wanted if c in self.numbers or c in self.integers]
        others = [c for c in wanted if c not in text and c not in converted]
        dtype = {**{c: str for c in text}, **{c: np.float64 for c in converted}}
        if not self.infer_others:
            dtype.update({c: str for c in others})
        return dict(sep=self.sep, usecols=wanted, dtype=dtype, keep_default_na=False,
                    na_values={c: list(MISSING) for c in converted + others}, encoding="utf-8-sig"), converted

    def _kinds(self, frame: pd.DataFrame, path: Path, converted: list[str]) -> pd.DataFrame:
        """Text cells stripped (with ``strip``) and the integer columns checked and made int64, in place."""
        for column in [c for c in frame.columns if c in self.text or c == self.unique] if self.strip else ():
            frame[column] = frame[column].str.strip()
        whole = [c for c in converted if c in self.integers]
        if whole:
            values = frame[whole].to_numpy()
            if (~np.isfinite(values) | (values % 1 != 0)).any():
                self._name_bad_cell(path, whole)
            frame[whole] = frame[whole].astype(np.int64)
        return frame

    def _name_bad_cell(self, path: Path, columns: list[str]) -> None:
        """Raise for the first cell of ``columns`` that is not of its kind, naming its line (the slow path)."""
        cells = pd.read_csv(path, sep=self.sep, usecols=columns, dtype=str, keep_default_na=False)
        for column in columns:
            self._check_cells(cells[column], path, column, whole=column in self.integers)

    def _checked(self, frame: pd.DataFrame, path: Path, allow_empty: bool) -> pd.DataFrame:
        if not allow_empty and frame.empty:
            raise ValueError(f"{self._name(path)} is empty: it has a header but no data line")
        if self.unique in frame.columns:
            self._check_unique(frame[self.unique], path)
        return frame

    def _check_cells(self, cells: pd.Series, path: Path, column: str, whole: bool) -> None:
        """Raise for the first text cell that is not a number (not a whole number with ``whole``)."""
        stripped = cells.str.strip()
        values = pd.to_numeric(stripped.where(~stripped.isin(MISSING)), errors="coerce")
        bad = values.isna() & ~stripped.isin(MISSING) if not whole else values.isna() | (values % 1 != 0)
        if bad.any():
            at = int(np.flatnonzero(bad.to_numpy())[0])
            kind = "a whole number" if whole else "a number (or NA)"
            raise ValueError(f"{self._name(path)} line {line_number(at)}, column {column}: "
                             f"'{cells.iloc[at]}' is not {kind}")

    def _check_unique(self, ids: pd.Series, path: Path) -> None:
        empty = np.flatnonzero(ids.eq("").to_numpy())
        if empty.size:
            raise ValueError(f"{self._name(path)} line {line_number(empty[0])}: empty {self.unique}")
        repeated = np.flatnonzero(ids.duplicated().to_numpy())
        if repeated.size:
            second = int(repeated[0])
            first = int(np.flatnonzero(ids.eq(ids.iloc[second]).to_numpy())[0])
            raise ValueError(f"{self._name(path)}: duplicate {self.unique} '{ids.iloc[second]}' on lines "
                             f"{line_number(first)} and {line_number(second)}")

    def write(self, frame: pd.DataFrame, path: str | os.PathLike, **kwargs) -> None:
        """Write the table atomically after checking it has every required column.

        Raises:
            ValueError: a required column is missing (a bug in the writer, named as such).
        """
        missing = [c for c in self.required if c not in frame.columns]
        if missing:
            raise ValueError(f"refusing to write {self._name(Path(path))} without column(s) {', '.join(missing)}")
        write_tsv(frame, path, **kwargs)
