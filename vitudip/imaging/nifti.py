"""Load a T1 NIfTI and check that it is a usable image on the expected grid."""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError
from nibabel.spatialimages import HeaderDataError

from vitudip.imaging.grid import AUTO_GRID, corner_distance_mm, mni_grid, recognise_grid

_GZIP_MAGIC = b"\x1f\x8b"
#: Size of a NIfTI-1 header; a gzip stream that cannot yield this much is truncated.
_NIFTI1_HEADER_BYTES = 348
_READ_ERRORS = (OSError, EOFError, zlib.error, ValueError)


class ImageCheckError(Exception):
    """An image that cannot be used, with a short human-readable ``reason``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _one_line(err: BaseException) -> str:
    """Error text on one line: reasons end up in TSV cells and one-line CLI messages."""
    return " ".join(str(err).split()) or type(err).__name__


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == _GZIP_MAGIC


def _unreadable(path: Path, detail: str) -> ImageCheckError:
    kind = "gzip" if _is_gzip(path) else "file"
    return ImageCheckError(f"unreadable (truncated or corrupt {kind}): {detail}")


def _gzip_header_readable(path: Path) -> bool:
    """Whether a gzip file decompresses at least as far as a NIfTI header."""
    try:
        with gzip.open(path, "rb") as handle:
            return len(handle.read(_NIFTI1_HEADER_BYTES)) == _NIFTI1_HEADER_BYTES
    except (OSError, EOFError, zlib.error):
        return False


def _open_header(path: Path) -> nib.Nifti1Image:
    """Read only the header; nibabel leaves the data on disk until it is asked for."""
    try:
        image = nib.load(path)
    except ImageFileError as err:
        # nibabel reports a cut-short gzip as an unknown file type; tell the two apart.
        if _is_gzip(path) and not _gzip_header_readable(path):
            raise _unreadable(path, "the data ends inside the NIfTI header") from err
        if _is_gzip(path) and not path.name.endswith(".gz"):
            raise ImageCheckError(f"gzip-compressed but named '{path.name}': rename it to end in .nii.gz "
                                  "(nibabel tells the compression from the name)") from err
        raise ImageCheckError("not a NIfTI file") from err
    except HeaderDataError as err:
        raise ImageCheckError(f"invalid NIfTI header: {_one_line(err)}") from err
    except _READ_ERRORS as err:
        raise _unreadable(path, _one_line(err)) from err
    if not isinstance(image, (nib.Nifti1Image, nib.Nifti2Image)):
        raise ImageCheckError("not a NIfTI file")
    return image


def _spatial_shape(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """The 3-D shape, dropping a trailing length-1 time axis."""
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3:
        raise ImageCheckError(f"{len(shape)}-D image of shape {tuple(shape)}")
    return tuple(int(s) for s in shape)


def _grid_hint(shape: tuple[int, int, int]) -> str:
    """What to set when an image is on the other MNI grid than the config says."""
    for voxel_mm in (1, 2):
        if shape == mni_grid(voxel_mm)[0]:
            return (f": it is on the {voxel_mm} mm MNI grid, so set preprocess.input_voxel_mm to {voxel_mm}"
                    + (" (and preprocess.downsample to 2 for a 2 mm cache)" if voxel_mm == 1 else ""))
    return ""


def _check_grid(
    image: nib.Nifti1Image,
    expected_shape: tuple[int, int, int],
    expected_affine: np.ndarray | None,
    affine_tol_mm: float,
) -> tuple[int, int, int]:
    shape = _spatial_shape(image.shape)
    if shape != tuple(expected_shape):
        raise ImageCheckError(f"shape {shape} differs from expected {tuple(expected_shape)}{_grid_hint(shape)}")
    if expected_affine is not None:
        distance = corner_distance_mm(image.affine, expected_affine, shape)
        if distance > affine_tol_mm:
            known = recognise_grid(shape, image.affine)
            hint = (f": it is on {known.name} ({known.description}), so set preprocess.input_grid to {known.name} "
                    f"or {AUTO_GRID}" if known is not None else "")
            raise ImageCheckError(f"affine differs from the expected grid by {distance:.3g} mm{hint}")
    return shape


def _checked_header(path: Path) -> nib.Nifti1Image:
    """The header of an existing, non-empty NIfTI file."""
    if not path.is_file():
        raise ImageCheckError("file not found")
    if path.stat().st_size == 0:
        raise ImageCheckError("empty file (0 bytes)")
    try:
        with open(path, "rb"):
            pass
    except OSError as err:
        # e.g. no read permission: an exclusion with the reason, like any other unusable image
        raise ImageCheckError(f"cannot be opened: {err.strerror or _one_line(err)}") from err
    return _open_header(path)


def image_grid(path: str | os.PathLike) -> tuple[tuple[int, int, int], np.ndarray]:
    """The 3-D shape and affine of a NIfTI, from its header alone (the data stays compressed).

    Args:
        path: ``.nii`` or ``.nii.gz`` file.

    Raises:
        ImageCheckError: the file is missing, empty, not a NIfTI or not 3-D.
    """
    image = _checked_header(Path(path))
    return _spatial_shape(image.shape), np.asarray(image.affine, dtype=float)


def _read_data(image: nib.Nifti1Image, path: Path, shape: tuple[int, int, int]) -> np.ndarray:
    try:
        # The proxy applies any scl_slope/scl_inter in float32, never in float64.
        data = np.asarray(image.dataobj, dtype=np.float32)
    except _READ_ERRORS as err:
        raise _unreadable(path, _one_line(err)) from err
    return data.reshape(shape)


def _in_grid_orientation(image: nib.Nifti1Image, path: Path, expected_affine: np.ndarray) -> nib.Nifti1Image:
    """The image with its voxel axes flipped or permuted to the grid's orientation, when they differ.

    An image stored mirrored (say x running right to left, its affine saying so) holds the same brain at the
    same place: reordering its axes is lossless, and the grid check then judges only where the image is.
    """
    transform = nib.orientations.ornt_transform(nib.orientations.io_orientation(image.affine),
                                                nib.orientations.io_orientation(expected_affine))
    if (transform == [[0, 1], [1, 1], [2, 1]]).all() or len(image.shape) != 3:
        return image
    try:
        return image.as_reoriented(transform)
    except _READ_ERRORS as err:
        raise _unreadable(path, _one_line(err)) from err


def load_checked_t1(
    path: str | os.PathLike,
    expected_shape: tuple[int, int, int],
    expected_affine: np.ndarray | None,
    affine_tol_mm: float = 1e-2,
) -> np.ndarray:
    """Load a 3-D T1 volume, refusing anything that is not a finite, non-empty image on the expected grid.

    The header (shape, affine) is checked before the data is decompressed, so a
    wrong image fails fast. A 4-D image with a single volume is squeezed to 3-D.

    Args:
        path: ``.nii`` or ``.nii.gz`` file.
        expected_shape: the grid's 3-D shape.
        expected_affine: the grid's 4 x 4 affine; ``None`` skips the affine check.
        affine_tol_mm: largest tolerated corner displacement between the affines, in mm.

    Returns:
        The volume as a float32 3-D array (nibabel's memory order).

    Raises:
        ImageCheckError: with a short ``reason`` when the image is unusable.
    """
    path = Path(path)
    image = _checked_header(path)
    if expected_affine is not None:
        image = _in_grid_orientation(image, path, expected_affine)
    shape = _check_grid(image, expected_shape, expected_affine, affine_tol_mm)
    data = _read_data(image, path, shape)
    if not np.isfinite(data).all():
        raise ImageCheckError("contains NaN or Inf values")
    if not data.any():
        raise ImageCheckError("empty brain (all voxels zero)")
    return data
