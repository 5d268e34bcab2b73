"""Deterministic, grouped train/test/val splits (60/20/20 as in the seed paper).

A group's split depends only on the dataset name and the group id (a SHA-256 hash), not
on file order, file count or a random generator, so adding files never moves old ones
and every patient/report lands wholly in one split.
"""

from __future__ import annotations

import hashlib

SPLITS = ("train", "test", "val")
FRACTIONS = {"train": 0.6, "test": 0.2, "val": 0.2}


def split_of(dataset: str, group: str) -> str:
    """The split of ``group`` in ``dataset``: 60 % train, 20 % test, 20 % val."""
    digest = hashlib.sha256(f"{dataset}\x00{group}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    if u < FRACTIONS["train"]:
        return "train"
    if u < FRACTIONS["train"] + FRACTIONS["test"]:
        return "test"
    return "val"
