"""The prepared-image cache: keyed by (dataset, file hash, protocol), .npy without pickle."""

from __future__ import annotations

import os

import numpy as np
import pytest

from medbench.datasets import get_dataset
from medbench.datasets.cache import PreparedCache, default_cache_dir, prepare_image
from medbench.datasets.protocols import NATIVE, PAPER, Protocol
from tests.fixture_formats import jsrt_picture, picture, write_jsrt_img, write_png


@pytest.fixture
def jsrt(tmp_path):
    write_jsrt_img(tmp_path / "data" / "jsrt" / "JPCLN001.IMG", jsrt_picture(1))
    dataset = get_dataset("jsrt", tmp_path / "data")
    return dataset, dataset.records()[0]


def test_second_preparation_comes_from_the_cache(tmp_path, jsrt, monkeypatch):
    dataset, record = jsrt
    cache = PreparedCache(tmp_path / "cache")
    first = prepare_image(dataset, record, PAPER, cache)
    assert (cache.hits, cache.misses) == (0, 1)
    assert first.pixels.shape == (256, 256) and first.bit_depth == 8
    files = sorted(p.suffix for p in (tmp_path / "cache").rglob("*") if p.is_file())
    assert files == [".json", ".npy"]

    def no_reading(*args, **kwargs):
        raise AssertionError("the file was decoded again")

    monkeypatch.setattr(dataset, "read_file", no_reading)
    second = prepare_image(dataset, record, PAPER, cache)
    assert cache.hits == 1
    assert second.bit_depth == 8 and second.image_id == "JPCLN001"
    np.testing.assert_array_equal(second.pixels, first.pixels)
    assert second.meta["protocol"] == "paper" and second.meta["body_part"] == "CHEST"


def test_protocols_and_contents_are_separate_keys(tmp_path, jsrt):
    dataset, record = jsrt
    cache = PreparedCache(tmp_path / "cache")
    native = prepare_image(dataset, record, NATIVE, cache)
    assert native.bit_depth == 12 and native.pixels.shape == (2048, 2048)
    half = prepare_image(dataset, record, Protocol(size=1024, bit_depth=None), cache)
    assert half.pixels.shape == (1024, 1024) and cache.misses == 2
    # The same path with new content is a new key: never served stale.
    write_jsrt_img(record.source, jsrt_picture(9))
    stat = os.stat(record.source)  # a coarse file system could keep the old mtime
    os.utime(record.source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))
    changed = prepare_image(dataset, record, NATIVE, cache)
    assert cache.misses == 3
    np.testing.assert_array_equal(changed.pixels, jsrt_picture(9))


def test_a_broken_entry_is_prepared_again(tmp_path):
    write_png(tmp_path / "imgs" / "a.png", picture((40, 40), 8))
    dataset = get_dataset(f"folder:{tmp_path / 'imgs'}")
    record = dataset.records()[0]
    cache = PreparedCache(tmp_path / "cache")
    prepare_image(dataset, record, NATIVE, cache)
    (npy,) = (tmp_path / "cache").rglob("*.npy")
    npy.write_bytes(b"garbage")
    again = prepare_image(dataset, record, NATIVE, cache)
    np.testing.assert_array_equal(again.pixels, picture((40, 40), 8))
    assert cache.misses == 2


def test_pickled_arrays_are_never_loaded(tmp_path):
    write_png(tmp_path / "imgs" / "a.png", picture((16, 16), 8))
    dataset = get_dataset(f"folder:{tmp_path / 'imgs'}")
    record = dataset.records()[0]
    cache = PreparedCache(tmp_path / "cache")
    prepare_image(dataset, record, NATIVE, cache)
    (npy,) = (tmp_path / "cache").rglob("*.npy")
    np.save(npy, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    assert prepare_image(dataset, record, NATIVE, cache).pixels.dtype == np.uint8
    assert cache.misses == 2  # the object array was refused, not unpickled


def test_default_location_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDBENCH_CACHE", str(tmp_path / "elsewhere"))
    assert default_cache_dir() == tmp_path / "elsewhere"
    monkeypatch.delenv("MEDBENCH_CACHE")
    assert default_cache_dir().parts[-2:] == (".cache", "medbench")


def test_datasets_without_content_hashes_are_not_cached(tmp_path):
    dataset = get_dataset("sample")
    record = dataset.records()[0]
    cache = PreparedCache(tmp_path / "cache")
    prepare_image(dataset, record, PAPER, cache)
    assert cache.misses == 0 and not (tmp_path / "cache").exists()
