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
    """Names of the installed datasets, as typed on the command line.

    Returns
    -------
    list of str
        Sorted names of every dataset that loaded (broken plugins are left out and
        listed in ``registry.broken``).
    """
    return registry.names()


def get_dataset(spec: str, data_root: Path | None = None) -> Dataset:
    """The dataset for a command-line spec.

    Parameters
    ----------
    spec
        ``name`` or ``name:argument`` (``jsrt``, ``folder:/data/xrays``, ``synthetic:200``).
    data_root
        The folder holding one sub-folder per dataset (``--data-root``), if given.

    Returns
    -------
    Dataset
        A new reader; nothing is read until its records are asked for.

    Raises
    ------
    UnknownNameError
        No installed dataset has that name (the message lists the known ones).
    DatasetError
        The argument is not one the dataset accepts (``synthetic:abc``).
    """
    name, _, argument = spec.partition(":")
    cls = registry.get(name)
    return cls(data_root=data_root, argument=argument or None)  # type: ignore[operator]
