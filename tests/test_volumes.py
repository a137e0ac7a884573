"""The cache's reader: rows read without mapping the file, so a job's resident memory does not grow by them."""

from __future__ import annotations

import numpy as np
import pytest

from vitudip.data.volumes import CachedVolumes


def _resident_file_kb() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("RssFile:"))


@pytest.fixture()
def cache(tmp_path):
    images = np.lib.format.open_memmap(tmp_path / "images.npy", mode="w+", dtype=np.float16, shape=(48, 64, 64, 64))
    for row in range(48):
        images[row] = row
    images.flush()
    del images
    return tmp_path


def test_rows_come_back_in_the_served_order_alone_and_all_at_once(cache):
    volumes = CachedVolumes(cache, [5, 0, 47])
    assert volumes.volume_shape == (64, 64, 64) and len(volumes) == 3
    assert [float(volumes[i][0, 0, 0]) for i in range(3)] == [5.0, 0.0, 47.0]
    everything = volumes.load_all()
    assert everything.dtype.is_floating_point and everything.shape == (3, 64, 64, 64)
    assert everything[:, 1, 2, 3].tolist() == [5.0, 0.0, 47.0]


def test_reading_every_row_leaves_no_mapped_page_in_resident_memory(cache):
    """48 rows of 512 KB: through a memory map they would stay resident (24 MB), read with pread they do not."""
    volumes = CachedVolumes(cache, range(48))
    # the first read loads torch's and numpy's code pages, which count as resident file pages too
    float(volumes[0].float().sum())
    float(np.asarray(volumes.read(0), np.float32).sum())
    before = _resident_file_kb()
    total = sum(float(volumes[i].float().sum()) for i in range(48))
    assert total == sum(row * 64**3 for row in range(48))
    assert _resident_file_kb() - before < 4_000
    mapped = np.load(cache / "images.npy", mmap_mode="r")
    before = _resident_file_kb()
    assert float(sum(np.asarray(mapped[row], np.float32).sum() for row in range(48))) == total
    # the measure itself sees a map's pages (else the assertion above could not fail)
    assert _resident_file_kb() - before > 16_000


def test_a_cache_cut_short_names_the_file_and_the_row(cache):
    path = cache / "images.npy"
    path.write_bytes(path.read_bytes()[:-1000])
    with pytest.raises(ValueError, match=r"images.npy ends before row 47"):
        CachedVolumes(cache, [47])[0]
