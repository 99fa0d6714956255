"""A non-editable install works outside the checkout: it carries the shipped configs."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.fmnist


def test_installed_package_runs_a_search_from_another_directory(tmp_path):
    """`pip install .` (a wheel) then `nlfs search --budget 3` elsewhere finds configs/."""
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            str(ROOT),
            "-w",
            str(wheels),
        ],
        check=True,
        capture_output=True,
        cwd=ROOT,
    )
    (wheel,) = wheels.glob("nlfs-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)  # what pip install puts into site-packages
    shipped = sorted(p.name for p in (site / "nlfs" / "configs").glob("*.toml"))
    assert "default.toml" in shipped and (site / "nlfs/configs/profiles/micro.toml").is_file()

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # The unpacked wheel comes first on the path, ahead of the checkout's editable install.
    env = {**os.environ, "PYTHONPATH": str(site), "NLFS_THREADS": "1"}
    env.pop("NLFS_CONFIG_DIR", None)
    script = (
        "import sys, nlfs; print('package at', nlfs.__file__); "
        "from nlfs.cli import main; sys.argv = ['nlfs', 'search', '--budget', '3']; main()"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert f"package at {site}" in done.stdout
    assert "3/3 evaluated" in done.stdout
    assert (elsewhere / "runs" / "regevo-cell-micro-s0.journal").is_file()
