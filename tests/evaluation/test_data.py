"""Datasets: idx parsing, the missing-dataset message, cached loading and seeded splits."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nlfs.errors import DataError
from nlfs.evaluation import data
from nlfs.evaluation.data import (
    IDX_FILES,
    load_dataset,
    make_split,
    split_indices,
)


def write_idx(path: Path, array: np.ndarray, compress: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(raw))
    else:
        path.write_bytes(raw)


def fake_mnist(folder: Path, n_train: int = 40, n_test: int = 10, compress: bool = False) -> None:
    """Tiny MNIST-format idx files (8x8 images) with labels 0..9."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        images, labels = IDX_FILES[split]
        write_idx(folder / images, rng.integers(0, 256, (n, 8, 8)), compress)
        write_idx(folder / labels, np.arange(n) % 10, compress)


@pytest.fixture(autouse=True)
def clean_cache(monkeypatch):
    """Each test sees an empty dataset cache (fake datasets must not leak into others)."""
    monkeypatch.setattr(data, "_CACHE", {})


@pytest.mark.parametrize("compress", [False, True])
def test_idx_files_in_a_data_dir_load_as_uint8_nchw(tmp_path, compress):
    fake_mnist(tmp_path, compress=compress)
    ds = load_dataset("mnist", tmp_path)
    assert ds.train_x.shape == (40, 1, 8, 8) and ds.train_x.dtype == torch.uint8
    assert ds.test_x.shape == (10, 1, 8, 8)
    assert ds.train_y.dtype == torch.int64 and ds.num_classes == 10
    assert ds.in_channels == 1 and ds.image_size == 8
    assert len(ds.mean) == 1 and 0.0 < ds.mean[0] < 1.0 and ds.std[0] > 0.0


def test_torchvision_raw_layout_is_found(tmp_path):
    fake_mnist(tmp_path / "FashionMNIST" / "raw")
    assert load_dataset("fashion-mnist", tmp_path).train_x.shape[0] == 40


def test_datasets_are_loaded_once_per_process(tmp_path):
    fake_mnist(tmp_path)
    assert load_dataset("mnist", tmp_path) is load_dataset("mnist", str(tmp_path))


def test_missing_dataset_message_names_package_flags_and_files(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST", tmp_path / "absent")
    with pytest.raises(DataError) as err:
        load_dataset("fashion-mnist")
    text = str(err.value)
    assert "\n" not in text
    for needle in (
        "dataset-fashion-mnist",
        "--data-dir",
        "--download",
        "train-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ):
        assert needle in text


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "svhn", "mnist"])
def test_torchvision_datasets_need_a_data_dir(name, tmp_path):
    with pytest.raises(DataError, match="--data-dir"):
        load_dataset(name, None if name != "mnist" else tmp_path)


def test_missing_cifar_in_a_folder_names_the_expected_files(tmp_path):
    with pytest.raises(DataError, match="cifar-10-batches-py"):
        load_dataset("cifar10", tmp_path)


def test_unknown_dataset_lists_known_ones():
    with pytest.raises(DataError, match="known: fashion-mnist"):
        load_dataset("imagenet")


def test_a_corrupt_idx_file_is_a_data_error(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(b"\x00\x00\x0d\x01\x00\x00\x00\x01abcd")
    with pytest.raises(DataError):
        data.read_idx(path)


@settings(max_examples=50, deadline=None)
@given(n=st.integers(10, 500), val=st.integers(1, 9), sub=st.integers(0, 5), seed=st.integers(0, 9))
def test_split_indices_are_disjoint_sized_and_seeded(n, val, sub, seed):
    train_size = None if sub == 0 else min(sub, n - val)
    train, held_out = split_indices(n, val, train_size, seed)
    assert len(held_out) == val
    assert len(train) == (n - val if train_size is None else train_size)
    assert not set(train) & set(held_out)
    again = split_indices(n, val, train_size, seed)
    assert np.array_equal(train, again[0]) and np.array_equal(held_out, again[1])
    # the validation slice does not depend on the training subset size
    assert np.array_equal(held_out, split_indices(n, val, None, seed)[1])


def test_split_seed_changes_the_validation_slice():
    assert not np.array_equal(
        split_indices(1000, 100, None, 0)[1], split_indices(1000, 100, None, 1)[1]
    )


def test_sizes_that_do_not_fit_are_a_data_error():
    with pytest.raises(DataError, match="val_size"):
        split_indices(100, 100, None, 0)
    with pytest.raises(DataError):
        split_indices(100, 50, 60, 0)


def test_val_split_holds_out_train_images_and_test_split_uses_the_test_set(tmp_path):
    fake_mnist(tmp_path)
    ds = load_dataset("mnist", tmp_path)
    val = make_split(ds, "val", val_size=8, train_size=20, seed=3)
    assert (len(val.train_x), len(val.eval_x), val.eval_name) == (20, 8, "val")
    test = make_split(ds, "test", val_size=8, seed=3)
    assert len(test.train_x) == 40 and torch.equal(test.eval_x, ds.test_x)
    assert len(make_split(ds, "test", val_size=8, test_size=4, seed=3).eval_x) == 4
    with pytest.raises(DataError):
        make_split(ds, "train", val_size=8)


@pytest.mark.fmnist
def test_debian_fashion_mnist_is_the_default():
    ds = load_dataset()
    assert ds.train_x.shape == (60000, 1, 28, 28) and ds.test_x.shape == (10000, 1, 28, 28)
    assert ds.num_classes == 10
    assert 0.25 < ds.mean[0] < 0.32 and 0.32 < ds.std[0] < 0.38  # the published statistics
