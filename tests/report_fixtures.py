"""Synthetic tidy records shared by the report tests (library and CLI)."""

from __future__ import annotations

import json

import numpy as np

from nlfs.stats.records import RunRecord

LOSSES = ("cross_entropy", "baikal", "focal")
SETTINGS = (
    ("cnn", "fmnist", "none"),
    ("cnn", "fmnist", "flipcrop"),
    ("resnet9", "fmnist", "none"),
    ("resnet9", "fmnist", "flipcrop"),
)
SEEDS = range(5)


def synthetic_records() -> list[RunRecord]:
    """3 losses x 4 settings x 5 seeds; focal better, baikal slightly better than CE."""
    rng = np.random.default_rng(2024)
    shift = {"cross_entropy": 0.0, "baikal": 0.002, "focal": 0.01}
    out = []
    for arch, dataset, augment in SETTINGS:
        base = 0.88 + rng.uniform(0, 0.03)
        seed_effect = rng.normal(0, 0.004, size=len(SEEDS))
        for loss in LOSSES:
            for k in SEEDS:
                value = base + shift[loss] + seed_effect[k] + rng.normal(0, 0.002)
                out.append(RunRecord(loss, arch, dataset, augment, k, "test_acc", value))
    return out


def strict_json(text: str):
    """Parse JSON as the standard has it: NaN and Infinity (which ``json.loads`` accepts) fail."""

    def refuse(token: str):
        raise ValueError(f"not strict JSON: {token}")

    return json.loads(text, parse_constant=refuse)


def json_numbers(node) -> list[float]:
    """Every number in a parsed JSON document (booleans are not numbers)."""
    if isinstance(node, bool):
        return []
    if isinstance(node, int | float):
        return [float(node)]
    if isinstance(node, dict):
        node = list(node.values())
    if isinstance(node, list):
        return [x for item in node for x in json_numbers(item)]
    return []


def markdown_table(text: str, first_column: str) -> list[list[str]]:
    """The body rows of the Markdown table whose header starts with ``first_column``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_column} |"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split(" | ")])
    return rows
