"""Image datasets by name, loaded once per process and split with a fixed seed.

Fashion-MNIST (the default) and MNIST are read from idx files with numpy: Debian's
``dataset-fashion-mnist`` package puts them under ``/usr/share/datasets/fashion-mnist/``; a
``data_dir`` may hold them directly or in torchvision's ``<Name>/raw/`` layout. CIFAR-10/100 and
SVHN go through torchvision. Nothing downloads unless ``download=True``.

Images are kept as uint8 ``[N, C, H, W]`` tensors (a quarter of the memory of floats, and the
input RandAugment and friends expect); the evaluator converts each batch to float, augments and
normalises it with the per-channel statistics recorded here.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nlfs.errors import DataError

DATASETS = ("fashion-mnist", "mnist", "cifar10", "cifar100", "svhn")
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
DEBIAN_PACKAGE = "dataset-fashion-mnist"
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_TORCHVISION_DIR = {"fashion-mnist": "FashionMNIST", "mnist": "MNIST"}
_EXPECTED = {
    "cifar10": "cifar-10-batches-py/ (data_batch_1..5, test_batch)",
    "cifar100": "cifar-100-python/ (train, test)",
    "svhn": "train_32x32.mat, test_32x32.mat",
}
_PRESENT = {  # what must exist before torchvision is even imported (its import is slow)
    "cifar10": ("cifar-10-batches-py",),
    "cifar100": ("cifar-100-python",),
    "svhn": ("train_32x32.mat", "test_32x32.mat"),
}
_IDX_DTYPES = {0x08: np.uint8}
_STATS_CHUNK = 8192  # images per chunk when computing channel statistics (bounds memory)


@dataclass(frozen=True)
class Dataset:
    """A whole dataset in memory: uint8 images ``[N, C, H, W]`` and int64 labels, on the CPU."""

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def in_channels(self) -> int:
        return self.train_x.shape[1]

    @property
    def image_size(self) -> int:
        return self.train_x.shape[-1]


@dataclass(frozen=True)
class Split:
    """Training images and the images a fitness is measured on, on the evaluation device.

    ``eval_name`` is ``"val"`` (a held-out slice of the training set) or ``"test"``.
    """

    dataset: Dataset
    train_x: torch.Tensor
    train_y: torch.Tensor
    eval_x: torch.Tensor
    eval_y: torch.Tensor
    eval_name: str


_CACHE: dict[tuple[str, str], Dataset] = {}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an idx file (optionally gzip-compressed) of unsigned bytes into an array.

    Raises:
        DataError: when the file is not a uint8 idx file or its size disagrees with its header.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path} is not an idx file of unsigned bytes")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int(d) for d in np.frombuffer(raw[4:header], dtype=">u4"))
    data = np.frombuffer(raw[header:], dtype=_IDX_DTYPES[raw[2]])
    if data.size != int(np.prod(shape)):
        raise DataError(f"{path}: header says {shape} but holds {data.size} values")
    return data.reshape(shape).copy()  # frombuffer is read-only; torch wants writable


def _find(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _idx_folders(name: str, data_dir: Path | None) -> list[Path]:
    if data_dir is None:
        return [DEBIAN_FASHION_MNIST] if name == "fashion-mnist" else []
    return [data_dir, data_dir / _TORCHVISION_DIR[name] / "raw"]


def _missing(name: str, data_dir: Path | None) -> DataError:
    where = data_dir if data_dir is not None else DEBIAN_FASHION_MNIST
    if name in _TORCHVISION_DIR:
        files = ", ".join(f"{stem}[.gz]" for pair in IDX_FILES.values() for stem in pair)
    else:
        files = _EXPECTED[name]
    return DataError(
        f"dataset {name} not found in {where}: install Debian's {DEBIAN_PACKAGE} package "
        f"(Fashion-MNIST only), or pass --data-dir DIR holding {files}, or add --download "
        "to fetch it there"
    )


def _load_idx(name: str, data_dir: Path | None, download: bool) -> tuple[np.ndarray, ...]:
    for attempt in range(2):
        for folder in _idx_folders(name, data_dir):
            paths = [_find(folder, stem) for pair in IDX_FILES.values() for stem in pair]
            if all(paths):
                arrays = [read_idx(p) for p in paths]
                return tuple(arrays)
        if attempt == 0 and download and data_dir is not None:
            _torchvision(name, data_dir, train=True, download=True)
            _torchvision(name, data_dir, train=False, download=True)
        else:
            break
    raise _missing(name, data_dir)


def _torchvision(name: str, root: Path, *, train: bool, download: bool):
    """Build a torchvision dataset object; its loaders read the files (we never unpickle)."""
    from torchvision import datasets

    classes = {
        "cifar10": datasets.CIFAR10,
        "cifar100": datasets.CIFAR100,
        "fashion-mnist": datasets.FashionMNIST,
        "mnist": datasets.MNIST,
    }
    try:
        if name == "svhn":
            return datasets.SVHN(str(root), split="train" if train else "test", download=download)
        return classes[name](str(root), train=train, download=download)
    except (RuntimeError, OSError) as err:
        if download:
            raise DataError(f"could not download {name} to {root}: {err}") from None
        raise _missing(name, root) from None


def _from_torchvision(name: str, root: Path, download: bool) -> tuple[np.ndarray, ...]:
    if not download and not all((root / part).exists() for part in _PRESENT[name]):
        raise _missing(name, root)
    out = []
    for train in (True, False):
        ds = _torchvision(name, root, train=train, download=download)
        if name == "svhn":  # already [N, C, H, W]; label 10 was mapped to 0 by torchvision
            images, labels = np.asarray(ds.data), np.asarray(ds.labels)
        else:  # CIFAR: [N, H, W, C]
            images, labels = np.asarray(ds.data).transpose(0, 3, 1, 2), np.asarray(ds.targets)
        out += [images, labels]
    return tuple(out)


def _channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    total = torch.zeros(images.shape[1], dtype=torch.float64)
    squares = torch.zeros_like(total)
    for start in range(0, len(images), _STATS_CHUNK):
        chunk = images[start : start + _STATS_CHUNK].to(torch.float64) / 255.0
        total += chunk.sum(dim=(0, 2, 3))
        squares += chunk.square().sum(dim=(0, 2, 3))
    count = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / count
    std = (squares / count - mean.square()).clamp_min(1e-12).sqrt()
    return tuple(mean.tolist()), tuple(std.tolist())


def load_dataset(
    name: str = "fashion-mnist", data_dir: str | os.PathLike | None = None, download: bool = False
) -> Dataset:
    """The dataset ``name``, read once per process and cached by name and folder.

    Args:
        name: one of :data:`DATASETS`.
        data_dir: folder holding the files (None: Debian's Fashion-MNIST; other datasets need
            one).
        download: let torchvision fetch missing files into ``data_dir``.

    Raises:
        DataError: unknown name, or the files are missing (the message says how to get them).
    """
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    folder = Path(data_dir).expanduser().resolve() if data_dir is not None else None
    key = (name, str(folder))
    if key in _CACHE:
        return _CACHE[key]
    if name in _TORCHVISION_DIR:
        train_x, train_y, test_x, test_y = _load_idx(name, folder, download)
        train_x, test_x = train_x[:, None], test_x[:, None]
    elif folder is None:
        raise _missing(name, None)
    else:
        train_x, train_y, test_x, test_y = _from_torchvision(name, folder, download)
    train_x = torch.from_numpy(np.ascontiguousarray(train_x))
    mean, std = _channel_stats(train_x)
    dataset = Dataset(
        name=name,
        train_x=train_x,
        train_y=torch.from_numpy(np.asarray(train_y, dtype=np.int64)),
        test_x=torch.from_numpy(np.ascontiguousarray(test_x)),
        test_y=torch.from_numpy(np.asarray(test_y, dtype=np.int64)),
        num_classes=int(max(train_y.max(), test_y.max())) + 1,
        mean=mean,
        std=std,
    )
    _CACHE[key] = dataset
    return dataset


def split_indices(
    n: int, val_size: int, train_size: int | None, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded disjoint (train, validation) index arrays into a training set of ``n`` images.

    The validation slice depends only on ``n``, ``val_size`` and ``seed``, so every training
    subset size is measured on the same images.

    Raises:
        DataError: when the sizes do not fit into ``n``.
    """
    rest = n - val_size
    if val_size >= n or (train_size is not None and train_size > rest):
        raise DataError(
            f"cannot take {val_size} validation and {train_size or 'the remaining'} training "
            f"images from {n}; lower val_size/train_size in the profile"
        )
    order = np.random.default_rng(np.random.SeedSequence([seed, 0])).permutation(n)
    val, train = order[:val_size], order[val_size:]
    if train_size is not None:
        train = train[:train_size]
    return np.sort(train), np.sort(val)


def make_split(
    dataset: Dataset,
    split: str = "val",
    *,
    val_size: int,
    train_size: int | None = None,
    test_size: int | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> Split:
    """Select training and evaluation images and move them to ``device``.

    ``split="val"``: train on the training set minus a seeded held-out slice of ``val_size``
    images, evaluate on that slice (searches). ``split="test"``: train on the whole training set
    (or a seeded subset of ``train_size``), evaluate on the test set (transfer only).
    """
    n = len(dataset.train_x)
    if split == "val":
        train, held_out = split_indices(n, val_size, train_size, seed)
        eval_x, eval_y = dataset.train_x[held_out], dataset.train_y[held_out]
    elif split == "test":
        train, _ = split_indices(n, 0, train_size, seed) if train_size else (np.arange(n), None)
        eval_x, eval_y = dataset.test_x, dataset.test_y
        if test_size is not None and test_size < len(eval_x):
            rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
            pick = torch.from_numpy(np.sort(rng.permutation(len(eval_x))[:test_size]))
            eval_x, eval_y = eval_x[pick], eval_y[pick]
    else:
        raise DataError(f"split must be 'val' or 'test', got {split!r}")
    train_t = torch.from_numpy(train)
    return Split(
        dataset=dataset,
        train_x=dataset.train_x[train_t].to(device),
        train_y=dataset.train_y[train_t].to(device),
        eval_x=eval_x.to(device),
        eval_y=eval_y.to(device),
        eval_name=split,
    )
