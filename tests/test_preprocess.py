"""Image checks, z-scoring, the training cache, QC, splits and the UK Biobank sample finder.

Images are small synthetic brains on the 2 mm MNI grid (91 x 109 x 91), padded to 96 x 112 x 96.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import runpy
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from vitudip.config import section_defaults
from vitudip.imaging import nifti
from vitudip.imaging.atlas import load_mni_template
from vitudip.imaging.cache_grid import GRID_FILE, CacheGrid
from vitudip.imaging.cohort import preprocess_cohort
from vitudip.imaging.grid import BLOCK_2MM, FSL_2MM, block_affine, mni_grid, unpad, voxel_volume_ml
from vitudip.imaging.image import MAX_BRAIN_FRACTION, preprocess_image
from vitudip.imaging.nifti import ImageCheckError, load_checked_t1
from vitudip.imaging.samples import read_samples
from vitudip.imaging.settings import PreprocessSettings
from vitudip.imaging.splits import random_splits, split_counts
from vitudip.imaging.ukb import ukb_samples

ROOT = Path(__file__).resolve().parent.parent
GRID_SHAPE, GRID_AFFINE = mni_grid(2)
PAD = (96, 112, 96)
#: mL of one 2 mm voxel.
VOXEL_ML = 0.008
#: Leading padding of 91 x 109 x 91 centred in 96 x 112 x 96, worked out by hand.
PAD_LEAD = (2, 1, 2)
#: float16 keeps ~3 significant digits; z-scores stay within a few units.
FP16_ATOL = 4e-3


# ---------------------------------------------------------------------------
# Synthetic inputs


def brain_volume(seed: int, shape: tuple[int, ...] = GRID_SHAPE) -> np.ndarray:
    """An ellipsoid of random positive intensities in a zero background."""
    rng = np.random.default_rng(seed)
    centre = (np.asarray(shape[:3]) - 1) / 2
    radii = np.asarray(shape[:3]) * 0.35
    axes = np.ogrid[tuple(slice(0, s) for s in shape[:3])]
    inside = sum(((axis - c) / r) ** 2 for axis, c, r in zip(axes, centre, radii)) <= 1
    return np.where(inside, rng.uniform(100, 1000, shape[:3]), 0).astype(np.float32)


def save_nifti(path: Path, volume: np.ndarray, affine: np.ndarray = GRID_AFFINE) -> Path:
    nib.save(nib.Nifti1Image(volume, affine), path)
    return path


def write_table(path: Path, header: list[str], rows: list[tuple]) -> Path:
    lines = ["\t".join(header)] + ["\t".join(str(value) for value in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def make_cohort(folder: Path, n: int, bad: dict[int, Callable[[Path], None]] | None = None) -> Path:
    """Write ``n`` subjects "0001", "0002", … and their samples table; ``bad`` maps a position to a spoiler."""
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        subject_id = f"{i + 1:04d}"
        path = images / f"sub-{subject_id}.nii.gz"
        if bad and i in bad:
            bad[i](path)
        else:
            save_nifti(path, brain_volume(i))
        rows.append((subject_id, path))
    return write_table(folder / "samples.tsv", ["subject_id", "path"], rows)


def output_paths(folder: Path) -> dict[str, Path]:
    return {
        "qc_path": folder / "qc.tsv",
        "cache_dir": folder / "cache",
        "brain_mask_path": folder / "brain_mask.npy",
        "splits_path": folder / "splits.tsv",
    }


def demo_settings(**overrides) -> PreprocessSettings:
    """The schema's defaults on the demo's 2 mm grid; ``overrides`` may be values the schema refuses."""
    defaults = PreprocessSettings.from_config({"preprocess": section_defaults("preprocess"), "seed": 0}, threads=1)
    return dataclasses.replace(defaults, **{"input_voxel_mm": 2, "pad_to": PAD, **overrides})


def run_cohort(samples: Path, out: Path, **overrides) -> pd.DataFrame:
    return preprocess_cohort(samples, **output_paths(out), settings=demo_settings(**overrides))


def read_tsv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype={"subject_id": str})


def assert_nothing_written(out: Path) -> None:
    """No output and no staging folder: the output folder is empty or absent."""
    assert not out.exists() or list(out.iterdir()) == []


def reference_zscore(volume: np.ndarray) -> np.ndarray:
    """Z-score of the brain voxels in float64, background 0."""
    brain = volume != 0
    values = volume[brain].astype(np.float64)
    return np.where(brain, (volume - values.mean()) / values.std(), 0.0)


# Each spoiler writes one kind of bad image at ``path``.


def truncated_gz(path: Path) -> None:
    save_nifti(path, brain_volume(50))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def text_named_nifti(path: Path) -> None:
    path.write_text("this is a text file, not an image\n")


def four_d(path: Path) -> None:
    volume = brain_volume(51)
    save_nifti(path, np.stack([volume, volume], axis=-1))


def wrong_shape(path: Path) -> None:
    save_nifti(path, brain_volume(52, (90, 109, 91)))


def wrong_affine(path: Path) -> None:
    affine = GRID_AFFINE.copy()
    affine[:3, 3] += 5.0
    save_nifti(path, brain_volume(53), affine)


def with_nan(path: Path) -> None:
    volume = brain_volume(54)
    volume[45, 54, 45] = np.nan
    save_nifti(path, volume)


def with_inf(path: Path) -> None:
    volume = brain_volume(55)
    volume[40, 50, 40] = np.inf
    save_nifti(path, volume)


def all_zero(path: Path) -> None:
    save_nifti(path, np.zeros(GRID_SHAPE, np.float32))


def not_brain_extracted(path: Path) -> None:
    """The brain with its background kept: low noise everywhere around it."""
    volume = brain_volume(56)
    background = volume == 0
    volume[background] = np.abs(np.random.default_rng(56).normal(0, 5, int(background.sum()))) + 1
    save_nifti(path, volume)


def ellipsoid(scale: float) -> np.ndarray:
    """The voxels of :func:`brain_volume`'s ellipsoid with its radii scaled by ``scale``."""
    centre = (np.asarray(GRID_SHAPE) - 1) / 2
    axes = np.ogrid[tuple(slice(0, s) for s in GRID_SHAPE)]
    return sum(((axis - c) / (r * scale)) ** 2 for axis, c, r in zip(axes, centre, np.asarray(GRID_SHAPE) * 0.35)) <= 1


def skull_shell(path: Path) -> None:
    """The brain (1,300 mL) in a skull-and-scalp shell up to 1.3x its radii, air 0 beyond: 39 % of the voxels
    are non-zero (under the fraction check), but 2,849 mL."""
    volume = brain_volume(57)
    shell = ellipsoid(1.3) & (volume == 0)
    volume[shell] = np.random.default_rng(57).uniform(20, 300, int(shell.sum()))
    save_nifti(path, volume)


def zero_bytes(path: Path) -> None:
    path.write_bytes(b"")


def missing(path: Path) -> None:
    """Write nothing."""


BAD_IMAGES = {
    "truncated-gz": (truncated_gz, "unreadable (truncated or corrupt gzip): "),
    "not-nifti": (text_named_nifti, "not a NIfTI file"),
    "4-d": (four_d, "4-D image of shape (91, 109, 91, 2)"),
    "wrong-shape": (wrong_shape, "shape (90, 109, 91) differs from expected (91, 109, 91)"),
    # A 5 mm shift on each axis moves every corner by sqrt(75) mm.
    "wrong-affine": (wrong_affine, "affine differs from the expected grid by 8.66 mm"),
    "nan": (with_nan, "contains NaN or Inf values"),
    "inf": (with_inf, "contains NaN or Inf values"),
    "all-zero": (all_zero, "empty brain (all voxels zero)"),
    "not-brain-extracted": (not_brain_extracted, "not brain-extracted: 100 % of the voxels are non-zero"),
    "skull-shell": (skull_shell, "not brain-extracted: 2,849 mL of non-zero voxels"),
    "zero-bytes": (zero_bytes, "empty file (0 bytes)"),
    "missing": (missing, "file not found"),
}


# ---------------------------------------------------------------------------
# One image


def test_zscore_brain_mean_0_sd_1_background_exactly_0():
    volume = brain_volume(0)
    brain = volume != 0
    result = preprocess_image(volume, 1, PAD, VOXEL_ML)
    image = unpad(result.image, GRID_SHAPE).astype(np.float32)
    assert abs(image[brain].mean()) < 1e-3
    assert abs(image[brain].std() - 1) < 1e-3
    np.testing.assert_allclose(image, reference_zscore(volume), atol=FP16_ATOL)
    background = result.image[~result.brain_mask]
    assert (background == 0).all() and not np.signbit(background).any()
    assert result.brain_voxels == int(brain.sum())
    np.testing.assert_allclose(result.mean, volume[brain].astype(np.float64).mean(), rtol=1e-9)
    np.testing.assert_allclose(result.sd, volume[brain].astype(np.float64).std(), rtol=1e-6)


def test_padding_is_centred_zero_and_float16():
    volume = brain_volume(1)
    result = preprocess_image(volume, 1, PAD, VOXEL_ML)
    assert result.image.shape == PAD and result.image.dtype == np.float16
    assert result.brain_mask.shape == PAD and result.brain_mask.dtype == bool
    inner = tuple(slice(lead, lead + size) for lead, size in zip(PAD_LEAD, GRID_SHAPE))
    expected = np.zeros(PAD, np.float32)
    expected[inner] = reference_zscore(volume)
    np.testing.assert_allclose(result.image.astype(np.float32), expected, atol=FP16_ATOL)
    expected_mask = np.zeros(PAD, bool)
    expected_mask[inner] = volume != 0
    np.testing.assert_array_equal(result.brain_mask, expected_mask)


def test_downsample_block_means_and_majority_mask():
    volume = brain_volume(2)
    result = preprocess_image(volume, 2, (48, 56, 48), VOXEL_ML)
    coarse_shape = (45, 54, 45)
    fine = tuple(slice(0, 2 * s) for s in coarse_shape)
    blocks = (45, 2, 54, 2, 45, 2)
    brain_fraction = (volume[fine] != 0).reshape(blocks).mean(axis=(1, 3, 5))
    # The ellipsoid's rim has half-brain blocks, which the majority rule must drop.
    assert (brain_fraction == 0.5).any()
    coarse_brain = brain_fraction > 0.5
    expected = np.where(coarse_brain, reference_zscore(volume)[fine].reshape(blocks).mean(axis=(1, 3, 5)), 0)
    np.testing.assert_allclose(unpad(result.image, coarse_shape).astype(np.float32), expected, atol=FP16_ATOL)
    np.testing.assert_array_equal(unpad(result.brain_mask, coarse_shape), coarse_brain)
    assert result.image.shape == (48, 56, 48)


def test_the_mni_brain_passes_and_the_mni_head_in_a_skull_shell_is_refused_by_its_volume():
    # FSL's template brain (1,830 mL) in a shell of skull and scalp (16 steps of dilation: 9-16 mm), the air beyond
    # it still 0: 43 % of the voxels are non-zero, under the fraction check, and the shell grows the mask by 68 %
    template, affine = load_mni_template()
    voxel_ml = voxel_volume_ml(affine)
    assert preprocess_image(template, 2, (96, 112, 96), voxel_ml).brain_voxels == np.count_nonzero(template)
    head = ndimage.binary_dilation(ndimage.binary_fill_holes(template != 0), iterations=16)
    assert head.mean() < MAX_BRAIN_FRACTION
    with_shell = np.where(template != 0, template, np.where(head, np.float32(150), np.float32(0)))
    with pytest.raises(ImageCheckError, match=r"not brain-extracted: 3,\d{3} mL of non-zero voxels"):
        preprocess_image(with_shell, 2, (96, 112, 96), voxel_ml)


# ---------------------------------------------------------------------------
# Loading and checking


def test_load_squeezes_a_single_volume_4d_image(tmp_path):
    volume = brain_volume(3)
    path = save_nifti(tmp_path / "one.nii.gz", volume[..., None])
    loaded = load_checked_t1(path, GRID_SHAPE, GRID_AFFINE)
    assert loaded.shape == GRID_SHAPE and loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, volume)


def test_load_without_affine_check_accepts_another_affine(tmp_path):
    path = tmp_path / "shifted.nii.gz"
    wrong_affine(path)
    assert load_checked_t1(path, GRID_SHAPE, None).shape == GRID_SHAPE
    with pytest.raises(ImageCheckError, match="affine differs"):
        load_checked_t1(path, GRID_SHAPE, GRID_AFFINE)


def test_load_reports_a_gzip_cut_inside_the_header_as_unreadable(tmp_path):
    path = save_nifti(tmp_path / "short.nii.gz", brain_volume(4))
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ImageCheckError) as caught:
        load_checked_t1(path, GRID_SHAPE, GRID_AFFINE)
    assert caught.value.reason.startswith("unreadable (truncated or corrupt gzip)")


# ---------------------------------------------------------------------------
# The cohort: cache, QC, mask, grid


def test_cache_rows_equal_preprocess_image_and_qc_and_union_mask(tmp_path):
    samples = make_cohort(tmp_path, 4, bad={2: missing})
    out = tmp_path / "out"
    returned = run_cohort(samples, out)
    cache = np.load(out / "cache" / "images.npy")
    assert cache.shape == (4, *PAD) and cache.dtype == np.float16
    qc = read_tsv(out / "qc.tsv")
    assert list(qc.columns) == ["subject_id", "path", "status", "reason", "row", "brain_voxels", "mean", "sd"]
    assert qc["subject_id"].tolist() == ["0001", "0002", "0003", "0004"]
    assert qc["status"].tolist() == ["ok", "ok", "excluded", "ok"]
    assert qc["row"].tolist() == [0, 1, 2, 3]
    assert returned["subject_id"].tolist() == qc["subject_id"].tolist()
    union = np.zeros(PAD, bool)
    for record in qc[qc["status"] == "ok"].itertuples():
        expected = preprocess_image(load_checked_t1(record.path, GRID_SHAPE, GRID_AFFINE), 1, PAD, VOXEL_ML)
        np.testing.assert_array_equal(cache[record.row], expected.image)
        assert record.brain_voxels == expected.brain_voxels
        # write_tsv keeps six significant digits.
        assert record.mean == pytest.approx(expected.mean, rel=1e-5)
        assert record.sd == pytest.approx(expected.sd, rel=1e-5)
        assert pd.isna(record.reason)
        union |= expected.brain_mask
    assert not cache[2].any()
    excluded = qc.iloc[2]
    assert excluded["reason"] == "file not found"
    assert pd.isna(excluded["brain_voxels"]) and pd.isna(excluded["mean"]) and pd.isna(excluded["sd"])
    np.testing.assert_array_equal(np.load(out / "brain_mask.npy"), union)


def test_grid_json_maps_the_cache_back_to_the_input_grid(tmp_path):
    samples = make_cohort(tmp_path, 2)
    out = tmp_path / "out"
    run_cohort(samples, out, downsample=2, pad_to=(48, 56, 48))
    layout = json.loads((out / "cache" / "grid.json").read_text())
    assert layout["input_grid"] == "block_2mm"
    assert layout["input_shape"] == list(GRID_SHAPE)
    np.testing.assert_allclose(layout["input_affine"], GRID_AFFINE)
    assert layout["downsample"] == 2 and layout["coarse_shape"] == [45, 54, 45]
    np.testing.assert_allclose(layout["coarse_affine"], block_affine(GRID_AFFINE, 2))
    assert layout["pad_to"] == [48, 56, 48] and layout["pad_offsets"] == [1, 1, 1]
    # Cache voxel (1, 1, 1) is coarse voxel (0, 0, 0).
    np.testing.assert_allclose(
        np.asarray(layout["cache_affine"]) @ [1, 1, 1, 1], block_affine(GRID_AFFINE, 2) @ [0, 0, 0, 1]
    )
    assert layout["dtype"] == "float16" and layout["n_rows"] == 2
    assert np.load(out / "cache" / "images.npy", mmap_mode="r").shape == (2, 48, 56, 48)


def test_pad_to_smaller_than_the_grid_is_refused(tmp_path):
    samples = make_cohort(tmp_path, 1)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"preprocess\.pad_to"):
        run_cohort(samples, out, pad_to=(96, 100, 96))
    assert_nothing_written(out)


def test_two_processes_write_the_same_outputs_as_one(tmp_path):
    samples = make_cohort(tmp_path, 6, bad={4: with_nan})
    run_cohort(samples, tmp_path / "one", threads=1)
    run_cohort(samples, tmp_path / "two", threads=2)
    for name in ["cache/images.npy", "brain_mask.npy"]:
        np.testing.assert_array_equal(np.load(tmp_path / "one" / name), np.load(tmp_path / "two" / name))
    for name in ["qc.tsv", "splits.tsv"]:
        assert (tmp_path / "one" / name).read_text() == (tmp_path / "two" / name).read_text()


# ---------------------------------------------------------------------------
# Bad images


@pytest.mark.parametrize("kind", list(BAD_IMAGES))
def test_bad_image_is_excluded_with_its_reason(tmp_path, kind, caplog):
    spoil, reason = BAD_IMAGES[kind]
    samples = make_cohort(tmp_path, 3, bad={1: spoil})
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING, logger="vitudip.preprocess"):
        run_cohort(samples, out, on_bad_image="exclude")
    qc = read_tsv(out / "qc.tsv").fillna({"reason": ""})
    assert qc["status"].tolist() == ["ok", "excluded", "ok"]
    assert qc["reason"][1].startswith(reason), qc["reason"][1]
    assert qc["reason"][0] == qc["reason"][2] == ""
    cache = np.load(out / "cache" / "images.npy")
    assert not cache[1].any() and cache[0].any() and cache[2].any()
    assert read_tsv(out / "splits.tsv")["subject_id"].tolist() == ["0001", "0003"]
    assert "0002" in caplog.text


@pytest.mark.parametrize("kind", list(BAD_IMAGES))
def test_bad_image_fails_naming_subject_and_file(tmp_path, kind):
    spoil, reason = BAD_IMAGES[kind]
    samples = make_cohort(tmp_path, 3, bad={1: spoil})
    out = tmp_path / "out"
    with pytest.raises(ValueError) as caught:
        run_cohort(samples, out, on_bad_image="fail")
    message = str(caught.value)
    assert "'0002'" in message and str(tmp_path / "images" / "sub-0002.nii.gz") in message
    assert reason in message and "\n" not in message
    assert_nothing_written(out)


def test_no_subject_passing_is_an_error(tmp_path):
    samples = make_cohort(tmp_path, 2, bad={0: all_zero, 1: missing})
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="none of the 2 subjects"):
        run_cohort(samples, out)
    assert_nothing_written(out)


# ---------------------------------------------------------------------------
# Samples table


def test_samples_resolve_relative_paths_and_keep_leading_zeros(tmp_path):
    folder = tmp_path / "study"
    (folder / "t1").mkdir(parents=True)
    save_nifti(folder / "t1" / "a.nii.gz", brain_volume(5))
    samples = write_table(folder / "samples.tsv", ["site", "subject_id", "path"], [("x", "0012", "t1/a.nii.gz")])
    table = read_samples(samples)
    assert table["subject_id"].tolist() == ["0012"]
    assert table["path"].tolist() == [str(folder / "t1" / "a.nii.gz")]
    out = tmp_path / "out"
    run_cohort(samples, out)
    qc = read_tsv(out / "qc.tsv")
    assert qc["subject_id"].tolist() == ["0012"] and qc["status"].tolist() == ["ok"]
    assert (out / "splits.tsv").read_text().splitlines()[1].startswith("0012\t")


def test_duplicate_subject_id_is_one_clear_error(tmp_path):
    samples = write_table(
        tmp_path / "samples.tsv", ["subject_id", "path"], [("0001", "a.nii.gz"), ("0002", "b.nii.gz"), ("0001", "c")]
    )
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=re.escape(f"{samples}: duplicate subject_id '0001' on lines 2 and 4")):
        run_cohort(samples, out)
    assert_nothing_written(out)


@pytest.mark.parametrize("content", ["subject_id\tpath\n", ""], ids=["header-only", "zero-bytes"])
def test_empty_samples_table_is_one_clear_error(tmp_path, content):
    samples = tmp_path / "samples.tsv"
    samples.write_text(content)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=re.escape(f"samples table {samples} is empty")):
        run_cohort(samples, out)
    assert_nothing_written(out)


@pytest.mark.parametrize(
    ("header", "rows", "message"),
    [
        (["subject_id", "file"], [("1", "a")], "lacks column(s) path"),
        (["subject_id", "path"], [("1", "a"), ("", "b")], "line 3: empty subject_id"),
        (["subject_id", "path"], [("1", "a"), ("2", "")], "line 3: empty path for subject '2'"),
    ],
)
def test_malformed_samples_table_is_refused(tmp_path, header, rows, message):
    samples = write_table(tmp_path / "samples.tsv", header, rows)
    with pytest.raises(ValueError, match=re.escape(message)):
        read_samples(samples)


def test_missing_samples_table_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="samples table .*nope.tsv not found"):
        read_samples(tmp_path / "nope.tsv")


# ---------------------------------------------------------------------------
# Settings


@pytest.mark.parametrize("overrides, message", [
    ({"threads": 0}, "preprocess.threads must be a positive integer, got 0"),
    ({"split_fractions": (0.5, 0.3, 0.1)}, "config key 'preprocess.splits': train + val + test must be 1, got 0.9"),
    ({"input_grid": "mni152_1mm"}, "preprocess.input_grid mni152_1mm has 182x218x182 voxels"),
])
def test_settings_that_cannot_work_are_refused_when_made(overrides, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        demo_settings(**overrides)


def test_the_settings_module_imports_no_image_or_worker_library():
    heavy = ["torch", "nibabel", "tqdm", "multiprocessing", "numpy", "scipy", "pandas"]
    code = f"import sys, vitudip.imaging.settings; print([m for m in {heavy!r} if m in sys.modules])"
    finished = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.strip() == "[]"


# ---------------------------------------------------------------------------
# Splits


def test_random_splits_are_seeded_disjoint_and_follow_the_fractions():
    ids = [f"{i:05d}" for i in range(100)]
    first = random_splits(ids, (0.7, 0.15, 0.15), seed=3)
    assert first.equals(random_splits(ids, (0.7, 0.15, 0.15), seed=3))
    assert not first["split"].equals(random_splits(ids, (0.7, 0.15, 0.15), seed=4)["split"])
    assert first["subject_id"].tolist() == ids
    assert first["split"].value_counts().to_dict() == {"train": 70, "val": 15, "test": 15}


def test_split_counts_always_add_up():
    for n in range(40):
        counts = split_counts(n, (0.6, 0.25, 0.15))
        assert sum(counts) == n
        assert all(abs(c - n * f) < 1 for c, f in zip(counts, (0.6, 0.25, 0.15)))


@pytest.mark.parametrize("fractions", [(0.5, 0.5, 0.5), (1.2, -0.1, -0.1), (0.5, 0.5)])
def test_bad_split_fractions_are_refused(tmp_path, fractions):
    samples = make_cohort(tmp_path, 1)
    with pytest.raises(ValueError, match=r"config key 'preprocess\.splits'"):
        run_cohort(samples, tmp_path / "out", split_fractions=fractions)


def test_cohort_splits_cover_ok_subjects_by_the_seeded_shuffle(tmp_path):
    samples = make_cohort(tmp_path, 6, bad={0: missing})
    out = tmp_path / "out"
    run_cohort(samples, out, split_fractions=(0.5, 0.25, 0.25), seed=7)
    splits = read_tsv(out / "splits.tsv")
    ok_ids = ["0002", "0003", "0004", "0005", "0006"]
    expected = random_splits(ok_ids, (0.5, 0.25, 0.25), seed=7)
    pd.testing.assert_frame_equal(splits, expected.astype({"split": str}))


def test_user_splits_file_is_used(tmp_path):
    samples = make_cohort(tmp_path, 3)
    split_file = write_table(
        tmp_path / "my_splits.tsv",
        ["subject_id", "split"],
        [("0003", "val"), ("0001", "test"), ("0002", "train"), ("9999", "train")],
    )
    out = tmp_path / "out"
    # the fractions are not used with a splits file, so fractions that do not sum to 1 are not refused
    run_cohort(samples, out, splits_file=split_file, split_fractions=(0.5, 0.1, 0.1))
    splits = read_tsv(out / "splits.tsv")
    assert splits.to_dict("list") == {"subject_id": ["0001", "0002", "0003"], "split": ["test", "train", "val"]}


def test_user_splits_file_missing_a_subject_is_refused(tmp_path):
    samples = make_cohort(tmp_path, 3)
    split_file = write_table(tmp_path / "my_splits.tsv", ["subject_id", "split"], [("0001", "train"), ("0003", "val")])
    out = tmp_path / "out"
    message = f"subject '0002' passed the image checks but is missing from splits file {split_file}"
    with pytest.raises(ValueError, match=re.escape(message)):
        run_cohort(samples, out, splits_file=split_file)
    assert_nothing_written(out)


def test_user_splits_file_with_unknown_split_is_refused(tmp_path):
    samples = make_cohort(tmp_path, 2)
    rows = [("0001", "train"), ("0002", "training")]
    split_file = write_table(tmp_path / "my_splits.tsv", ["subject_id", "split"], rows)
    with pytest.raises(ValueError, match=re.escape(f"splits file {split_file} line 3: unknown split 'training'")):
        run_cohort(samples, tmp_path / "out", splits_file=split_file)


# ---------------------------------------------------------------------------
# UK Biobank and the command line


def make_ukb_bulk(bulk: Path) -> None:
    for folder in ["1000123_20252_2_0", "999_20252_2_0", "1000300_20252_3_0"]:
        (bulk / folder / "T1").mkdir(parents=True)
        (bulk / folder / "T1" / "T1_unbiased_brain_linear.nii.gz").write_bytes(b"")
    (bulk / "1000200_20252_2_0" / "T1").mkdir(parents=True)
    (bulk / "1000400_20252_2_0.zip").write_bytes(b"")


def test_ukb_samples_finds_t1_images_sorted_by_eid(tmp_path, caplog):
    make_ukb_bulk(tmp_path)
    with caplog.at_level(logging.WARNING):
        samples = ukb_samples(tmp_path)
    assert samples["subject_id"].tolist() == ["999", "1000123"]
    assert samples["path"].tolist() == [
        str(tmp_path / f"{eid}_20252_2_0" / "T1" / "T1_unbiased_brain_linear.nii.gz") for eid in ["999", "1000123"]
    ]
    assert "1000200_20252_2_0" in caplog.text
    assert ukb_samples(tmp_path, instance=3)["subject_id"].tolist() == ["1000300"]


def test_ukb_samples_without_images_is_refused(tmp_path):
    (tmp_path / "1000200_20252_2_0").mkdir()
    pattern = f"<eid>_20252_2_0/T1/T1_unbiased_brain_linear.nii.gz under {tmp_path}"
    with pytest.raises(ValueError, match=re.escape(pattern)):
        ukb_samples(tmp_path)


LINEAR = "T1_unbiased_brain_linear.nii.gz"
NONLINEAR = "T1_brain_to_MNI.nii.gz"


def make_ukb_bulk_with_both_images(bulk: Path) -> None:
    """Two subjects with both registrations, one with only the linear, one with only the non-linear."""
    images = {"1001": [LINEAR, NONLINEAR], "1002": [LINEAR, NONLINEAR], "1003": [LINEAR], "1004": [NONLINEAR]}
    for eid, names in images.items():
        (bulk / f"{eid}_20252_2_0" / "T1").mkdir(parents=True)
        for name in names:
            (bulk / f"{eid}_20252_2_0" / "T1" / name).write_bytes(b"")


@pytest.mark.parametrize(("image", "eids"), [(LINEAR, ["1001", "1002", "1003"]), (NONLINEAR, ["1001", "1002", "1004"])])
def test_ukb_samples_picks_the_image_by_name(tmp_path, image, eids):
    make_ukb_bulk_with_both_images(tmp_path)
    samples = ukb_samples(tmp_path, image=image)
    assert samples["subject_id"].tolist() == eids
    assert samples["path"].tolist() == [str(tmp_path / f"{eid}_20252_2_0" / "T1" / image) for eid in eids]


@pytest.mark.parametrize(("image", "lacking"), [(LINEAR, "1004"), (NONLINEAR, "1003")])
def test_ukb_samples_skips_a_folder_lacking_the_chosen_image_with_a_warning(tmp_path, caplog, image, lacking):
    make_ukb_bulk_with_both_images(tmp_path)
    with caplog.at_level(logging.WARNING, logger="vitudip.imaging.ukb"):
        samples = ukb_samples(tmp_path, image=image)
    assert lacking not in samples["subject_id"].tolist()
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert warnings == [f"{tmp_path / f'{lacking}_20252_2_0'} has no T1/{image}; skipped"]


def test_ukb_samples_without_the_chosen_image_names_it(tmp_path):
    make_ukb_bulk(tmp_path)
    pattern = f"<eid>_20252_2_0/T1/{NONLINEAR} under {tmp_path}"
    with pytest.raises(ValueError, match=re.escape(pattern)):
        ukb_samples(tmp_path, image=NONLINEAR)


@pytest.mark.parametrize(
    ("image", "reason"),
    [
        ("T1/T1_brain_to_MNI.nii.gz", "holds a path separator"),
        ("/data/T1_brain_to_MNI.nii.gz", "holds a path separator"),
        ("T1\\T1.nii.gz", "holds a path separator"),
        ("T1_brain_to_MNI.mgz", "not a NIfTI file name ending in .nii or .nii.gz"),
        ("T1_brain_to_MNI", "not a NIfTI file name ending in .nii or .nii.gz"),
        ("T1.nii.gz.bak", "not a NIfTI file name ending in .nii or .nii.gz"),
        (".nii.gz", "not a NIfTI file name ending in .nii or .nii.gz"),
        ("", "not a NIfTI file name ending in .nii or .nii.gz"),
    ],
)
def test_ukb_samples_refuses_a_bad_image_name(tmp_path, image, reason):
    make_ukb_bulk(tmp_path)
    with pytest.raises(ValueError, match=re.escape(f"T1 image name {image!r} ") + ".*" + re.escape(reason)):
        ukb_samples(tmp_path, image=image)


def test_ukb_samples_script_takes_the_image_name(tmp_path):
    make_ukb_bulk_with_both_images(tmp_path / "bulk")
    main = runpy.run_path(str(ROOT / "scripts" / "ukb_samples.py"))["main"]
    main(["--bulk", str(tmp_path / "bulk"), "--image", NONLINEAR, "--out", str(tmp_path / "samples.tsv")])
    samples = read_samples(tmp_path / "samples.tsv")
    assert samples["subject_id"].tolist() == ["1001", "1002", "1004"]
    assert all(path.endswith(f"/T1/{NONLINEAR}") for path in samples["path"])


def test_ukb_samples_script_refuses_a_bad_image_name_in_one_line(tmp_path):
    make_ukb_bulk(tmp_path / "bulk")
    command = [sys.executable, str(ROOT / "scripts" / "ukb_samples.py"), "--bulk", str(tmp_path / "bulk")]
    command += ["--image", "T1/T1.nii.gz", "--out", str(tmp_path / "samples.tsv")]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 1
    assert finished.stderr.strip().splitlines() == [
        "error: T1 image name 'T1/T1.nii.gz' holds a path separator: give a file name inside each subject's "
        "T1/ folder, such as T1_unbiased_brain_linear.nii.gz"
    ]
    assert not (tmp_path / "samples.tsv").exists()


def test_ukb_samples_script_writes_the_samples_table(tmp_path):
    make_ukb_bulk(tmp_path / "bulk")
    main = runpy.run_path(str(ROOT / "scripts" / "ukb_samples.py"))["main"]
    main(["--bulk", str(tmp_path / "bulk"), "--out", str(tmp_path / "samples.tsv")])
    assert read_samples(tmp_path / "samples.tsv")["subject_id"].tolist() == ["999", "1000123"]


def test_preprocess_script_exits_1_with_one_line_on_a_duplicate_id(tmp_path):
    samples = write_table(tmp_path / "samples.tsv", ["subject_id", "path"], [("7", "a.nii.gz"), ("7", "b.nii.gz")])
    out = tmp_path / "out"
    command = [sys.executable, str(ROOT / "scripts" / "preprocess.py"), "--samples", str(samples)]
    command += ["--qc", str(out / "qc.tsv"), "--cache", str(out / "cache"), "--brain-mask", str(out / "mask.npy")]
    settings = {"seed": 0, "preprocess": {"input_voxel_mm": 2, "pad_to": list(PAD)}}
    command += ["--splits", str(out / "splits.tsv"), "--settings", json.dumps(settings)]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 1
    assert finished.stderr.strip().splitlines() == [
        f"error: samples table {samples}: duplicate subject_id '7' on lines 2 and 3"
    ]
    assert_nothing_written(out)


# ---------------------------------------------------------------------------
# Messages that say what to do


def test_a_gzipped_image_named_nii_is_told_to_be_renamed(tmp_path):
    gz = save_nifti(tmp_path / "sub.nii.gz", brain_volume(60))
    named = tmp_path / "sub.nii"
    named.write_bytes(gz.read_bytes())
    with pytest.raises(ImageCheckError, match=r"gzip-compressed but named 'sub.nii': rename it to end in \.nii\.gz"):
        load_checked_t1(named, GRID_SHAPE, GRID_AFFINE)


def test_an_image_on_the_other_grid_names_the_setting(tmp_path):
    shape_1mm, affine_1mm = mni_grid(1)
    path = save_nifti(tmp_path / "sub.nii.gz", np.ones(shape_1mm, np.float32), affine_1mm)
    with pytest.raises(ImageCheckError, match=r"on the 1 mm MNI grid, so set preprocess.input_voxel_mm to 1 "
                                              r"\(and preprocess.downsample to 2"):
        load_checked_t1(path, GRID_SHAPE, GRID_AFFINE)


# ---------------------------------------------------------------------------
# Standard grids: FSL's MNI152 2 mm grid and the block-averaged 1 mm grid, half a voxel apart


def make_grid_cohort(folder: Path, affines: list[np.ndarray]) -> Path:
    """One subject per affine, "0001", "0002", …, and their samples table."""
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, affine in enumerate(affines):
        subject_id = f"{i + 1:04d}"
        rows.append((subject_id, save_nifti(images / f"sub-{subject_id}.nii.gz", brain_volume(i), affine)))
    return write_table(folder / "samples.tsv", ["subject_id", "path"], rows)


def test_the_two_2mm_grids_are_half_a_1mm_voxel_apart():
    np.testing.assert_allclose(FSL_2MM.affine[:3, 3], [90, -126, -72])
    np.testing.assert_allclose(BLOCK_2MM.affine[:3, 3], [89.5, -125.5, -71.5])
    np.testing.assert_allclose(np.diag(FSL_2MM.affine), np.diag(BLOCK_2MM.affine))
    assert FSL_2MM.shape == BLOCK_2MM.shape == GRID_SHAPE


@pytest.mark.parametrize("on, input_grid", [
    (FSL_2MM, "auto"), (FSL_2MM, "fsl_2mm"), (BLOCK_2MM, "auto"), (BLOCK_2MM, "block_2mm")])
def test_images_on_either_2mm_grid_pass_and_the_cache_keeps_their_affine(tmp_path, on, input_grid):
    samples = make_grid_cohort(tmp_path, [on.affine] * 3)
    out = tmp_path / "out"
    qc = run_cohort(samples, out, input_grid=input_grid, downsample=2, pad_to=(48, 56, 48))
    assert qc["status"].tolist() == ["ok"] * 3
    record = json.loads((out / "cache" / GRID_FILE).read_text())
    assert record["input_grid"] == on.name
    np.testing.assert_array_equal(record["input_affine"], on.affine)
    layout = CacheGrid.read(out / "cache")
    assert layout.input_grid == on.name and layout.input_shape == GRID_SHAPE
    np.testing.assert_array_equal(layout.input_affine, on.affine)
    # the 4 mm cache voxel (0, 0, 0) is centred on its 2 x 2 x 2 block of the images' own voxels
    np.testing.assert_allclose(layout.coarse_affine @ [0, 0, 0, 1], on.affine @ [0.5, 0.5, 0.5, 1])


def test_a_cohort_on_two_grids_is_refused_naming_a_file_on_each(tmp_path):
    samples = make_grid_cohort(tmp_path, [BLOCK_2MM.affine, BLOCK_2MM.affine, FSL_2MM.affine, BLOCK_2MM.affine])
    out = tmp_path / "out"
    odd = tmp_path / "images" / "sub-0003.nii.gz"
    with pytest.raises(ValueError) as caught:
        run_cohort(samples, out)
    message = str(caught.value)
    assert f"subject '0003' ({odd}) is on fsl_2mm (FSL's MNI152 2 mm grid" in message
    assert f"subject '0001' ({tmp_path / 'images' / 'sub-0001.nii.gz'}) and 2 more are on block_2mm" in message
    assert "one cohort must share one grid" in message
    assert_nothing_written(out)


def test_a_named_grid_the_images_are_not_on_says_what_to_set(tmp_path):
    samples = make_grid_cohort(tmp_path, [BLOCK_2MM.affine] * 2)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"preprocess.input_grid is fsl_2mm, but subject '0001' \(.*sub-0001.nii.gz\) "
                                         r"and 1 more are on block_2mm .*: set preprocess.input_grid to block_2mm "
                                         r"\(or auto\)"):
        run_cohort(samples, out, input_grid="fsl_2mm")
    assert_nothing_written(out)


def test_a_named_grid_of_another_voxel_size_is_refused(tmp_path):
    samples = make_grid_cohort(tmp_path, [BLOCK_2MM.affine])
    with pytest.raises(ValueError, match=r"preprocess.input_grid mni152_1mm has 182x218x182 voxels but "
                                         r"preprocess.input_voxel_mm 2 expects 91x109x91: set input_grid to "
                                         r"block_2mm or fsl_2mm \(or auto\)"):
        run_cohort(samples, tmp_path / "out", input_grid="mni152_1mm")


def test_an_image_off_the_cohorts_grid_is_excluded_and_one_on_fsls_grid_is_named(tmp_path):
    samples = make_grid_cohort(tmp_path, [FSL_2MM.affine, FSL_2MM.affine @ np.diag([1, 1, 1.1, 1])])
    qc = run_cohort(samples, tmp_path / "out")
    assert qc["status"].tolist() == ["ok", "excluded"]
    assert qc["reason"].iloc[1].startswith("affine differs from the expected grid by")
    path = save_nifti(tmp_path / "fsl.nii.gz", brain_volume(1), FSL_2MM.affine)
    with pytest.raises(ImageCheckError, match=r"differs from the expected grid by 0.866 mm: it is on fsl_2mm \(FSL's "
                                              r"MNI152 2 mm grid.*\), so set preprocess.input_grid to fsl_2mm or auto"):
        load_checked_t1(path, GRID_SHAPE, BLOCK_2MM.affine)


#: 2 mm voxels on no standard grid: 3 mm off the block grid.
OFF_GRID_AFFINE = BLOCK_2MM.affine + np.pad(np.full((3, 1), 3.0), ((0, 1), (3, 0)))


@pytest.mark.parametrize("affine, name", [(FSL_2MM.affine, "fsl_2mm"), (OFF_GRID_AFFINE, "unchecked")])
def test_without_the_affine_check_the_cache_keeps_the_first_images_affine(tmp_path, affine, name):
    samples = make_grid_cohort(tmp_path, [affine, affine])
    out = tmp_path / "out"
    assert run_cohort(samples, out, check_affine=False)["status"].tolist() == ["ok", "ok"]
    layout = CacheGrid.read(out / "cache")
    assert layout.input_grid == name
    np.testing.assert_array_equal(layout.input_affine, affine)


def test_grid_json_written_before_grids_were_named_is_read_by_its_affine(tmp_path):
    samples = make_grid_cohort(tmp_path, [BLOCK_2MM.affine])
    out = tmp_path / "out"
    run_cohort(samples, out)
    path = out / "cache" / GRID_FILE
    record = json.loads(path.read_text())
    del record["input_grid"]
    path.write_text(json.dumps(record))
    assert CacheGrid.read(out / "cache").input_grid == "block_2mm"
    del record["coarse_affine"]
    path.write_text(json.dumps(record))
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))} lacks the field 'coarse_affine': rerun the "
                                         r"preprocess stage"):
        CacheGrid.read(out / "cache")
    path.write_text("{not json")
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))} is not valid JSON"):
        CacheGrid.read(out / "cache")
    path.unlink()
    with pytest.raises(FileNotFoundError, match=rf"{re.escape(str(path))} not found"):
        CacheGrid.read(out / "cache")


def test_an_image_that_cannot_be_opened_is_an_exclusion_with_its_reason(tmp_path, monkeypatch):
    # a mode-000 file: root reads it anyway, so the refusal is made where the file is opened
    samples = make_cohort(tmp_path, 3)
    locked = tmp_path / "images" / "sub-0002.nii.gz"
    real_open = open

    def refusing_open(path, *args, **kwargs):
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(nifti, "open", refusing_open, raising=False)
    run_cohort(samples, tmp_path / "out", on_bad_image="exclude")
    qc = read_tsv(tmp_path / "out" / "qc.tsv")
    assert qc["status"].tolist() == ["ok", "excluded", "ok"]
    assert qc["reason"][1] == "cannot be opened: Permission denied"


@pytest.mark.parametrize("axes", [(0,), (1, 2)])
def test_an_image_stored_mirrored_is_read_in_the_grid_s_orientation(tmp_path, axes):
    # the same brain at the same place, its voxel axes stored reversed (the affine says so): nothing moved
    volume = brain_volume(60)
    flip = np.eye(4)
    for axis in axes:
        flip[axis, axis], flip[axis, 3] = -1, GRID_SHAPE[axis] - 1
    path = save_nifti(tmp_path / "mirrored.nii.gz", np.flip(volume, axes).copy(), GRID_AFFINE @ flip)
    np.testing.assert_array_equal(load_checked_t1(path, GRID_SHAPE, GRID_AFFINE), volume)
    # mirrored and displaced: the displacement is still refused, by its size
    moved = GRID_AFFINE @ flip
    moved[:3, 3] += 5.0
    save_nifti(path, np.flip(volume, axes).copy(), moved)
    with pytest.raises(ImageCheckError, match="affine differs from the expected grid by 8.66 mm"):
        load_checked_t1(path, GRID_SHAPE, GRID_AFFINE)
