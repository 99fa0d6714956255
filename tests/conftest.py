"""Suite-wide settings, and the one policy for tests that need what a machine may lack.

A test marked ``fmnist`` needs Debian's Fashion-MNIST files; one marked ``gpu`` needs CUDA.
Where that is missing they are skipped with one stated reason each, never failed and never
skipped by a per-file condition of their own.
"""

import pytest
from hypothesis import settings

from nlfs.evaluation.data import DEBIAN_FASHION_MNIST, IDX_FILES

# A shared 2-core CI machine makes per-example timings noisy; no property here is about speed.
settings.register_profile("nlfs", deadline=None)
settings.load_profile("nlfs")

NO_FMNIST = (
    "Debian's dataset-fashion-mnist is not installed: run `make setup` or "
    "apt-get install dataset-fashion-mnist"
)
NO_CUDA = "no CUDA device here: gpu tests run on a machine with one"


def fashion_mnist_installed() -> bool:
    """Whether every idx file of Debian's Fashion-MNIST is there (plain or gzipped)."""
    stems = [stem for pair in IDX_FILES.values() for stem in pair]
    return all(
        (DEBIAN_FASHION_MNIST / stem).is_file() or (DEBIAN_FASHION_MNIST / f"{stem}.gz").is_file()
        for stem in stems
    )


def pytest_collection_modifyitems(config, items):
    needs = {
        "fmnist": any("fmnist" in item.keywords for item in items),
        "gpu": any("gpu" in item.keywords for item in items),
    }
    missing = {}
    if needs["fmnist"] and not fashion_mnist_installed():
        missing["fmnist"] = NO_FMNIST
    if needs["gpu"]:
        import torch

        if not torch.cuda.is_available():
            missing["gpu"] = NO_CUDA
    for item in items:
        for marker, reason in missing.items():
            if marker in item.keywords:
                item.add_marker(pytest.mark.skip(reason=reason))
                break
