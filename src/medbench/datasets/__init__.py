"""Dataset registry: the ``medbench.datasets`` entry-point group.

A name may carry an argument after a colon (``folder:/path/to/images``).
"""

from __future__ import annotations

from pathlib import Path

from medbench.datasets.base import Dataset, Record, Skipped
from medbench.registry import Registry

__all__ = ["Dataset", "Record", "Skipped", "registry", "get_dataset", "dataset_names"]

registry = Registry(group="medbench.datasets", kind="dataset")


def dataset_names() -> list[str]:
    return registry.names()


def get_dataset(spec: str, data_root: Path | None = None) -> Dataset:
    """The dataset for ``spec`` (``name`` or ``name:argument``)."""
    name, _, argument = spec.partition(":")
    cls = registry.get(name)
    return cls(data_root=data_root, argument=argument or None)  # type: ignore[operator]
