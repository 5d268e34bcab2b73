"""Training data: a dataset's train and validation splits, prepared by a protocol.

Records are chosen by :func:`~medbench.datasets.manifest.choose_records`, the code
``medbench run`` uses, so training and a run agree on which images are "train". Datasets
read from user files keep their split manifest in ``<models_dir>/manifests/<dataset>.csv``
(:meth:`SplitManifest.in_folder <medbench.datasets.manifest.SplitManifest.in_folder>`),
beside the models trained on them, the way a run keeps one in ``<out>/manifests/``: every
model trained into the same ``--models`` sees the same split even as files are added.
Built-in generated datasets (``sample``, ``synthetic``) need no manifest.

Images are read once, passed through the protocol (``paper``: 256×256, 8-bit) and kept in
memory in their storage dtype. Batches are random square crops (the whole image when it
is no larger than the crop), flipped up-down and left-right at random (radiographs have
no preferred side, and the splits are small). When every image has the crop's size, the
whole split is moved to the GPU once, so a batch costs an index operation and the GPU
never waits on a loader; otherwise crops are cut on the CPU and sent through pinned
memory.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from medbench.codecs import provenance
from medbench.datasets import Dataset, Record, get_dataset
from medbench.datasets.cache import prepare_image
from medbench.datasets.manifest import choose_with_manifest
from medbench.datasets.protocols import Protocol
from medbench.errors import DatasetError, MedbenchError
from medbench.image import Image, peak_value

log = logging.getLogger(__name__)


@dataclass
class SplitImages:
    """The images of one split, as the codecs will see them."""

    images: list[Image]
    dataset: str
    split: str

    def __len__(self) -> int:
        return len(self.images)


def choose_splits(dataset: Dataset, spec: str, splits: tuple[str, ...],
                  limit: int | None = None,
                  manifest_dir: Path | None = None, seed: int = 0) -> dict[str, list[Record]]:
    """The records of each of ``splits``, chosen as ``medbench run`` chooses them.

    Parameters
    ----------
    dataset : Dataset
        The opened dataset.
    spec : str
        Its spec as on the command line (names the manifest file).
    splits : tuple of str
        Splits wanted, e.g. ``("train", "val")``.
    limit : int, optional
        At most this many records per split (a seeded sample, as ``run --limit``).
    manifest_dir : Path, optional
        Folder whose ``manifests/`` holds the dataset's split manifest (read, updated and
        saved); None, or a dataset without a manifest: the group hash alone.
    seed : int
        Seed of the ``limit`` sample (``train --seed``, as ``run --seed``).

    Returns
    -------
    dict of str to list of Record
        Per split, what :func:`~medbench.datasets.manifest.choose_records` gives a run of
        that split with the same limit and manifest.
    """
    return choose_with_manifest(dataset, spec, splits, limit, manifest_dir, seed)


def load_splits(spec: str, data_root: Path | None, protocol: Protocol,
                splits: tuple[str, ...] = ("train", "val"), limit: int | None = None,
                progress: bool = False, manifest_dir: Path | None = None,
                seed: int = 0) -> dict[str, SplitImages]:
    """Read the ``splits`` of dataset ``spec`` (at most ``limit`` images per split, a
    sample drawn with ``seed``).

    Records come from :func:`choose_splits` (``manifest_dir`` and ``seed`` as there); each
    image is prepared by ``protocol``. An unreadable image is logged and left out.
    """
    dataset = get_dataset(spec, data_root)
    chosen = choose_splits(dataset, spec, splits, limit, manifest_dir, seed)
    for s in splits:
        if not chosen[s]:
            raise DatasetError(
                f"dataset {spec} has no images in its {s} split "
                f"({len(dataset.records())} images in all); training needs train and val "
                f"images, use a larger dataset"
            )

    def read(record) -> Image | None:
        try:  # prepared as a run prepares it, with its content hash (trained_on)
            return prepare_image(dataset, record, protocol)
        except MedbenchError as exc:  # one bad image never ends training
            log.warning("skipping %s: %s", record.source, exc)
            return None

    out = {}
    total = sum(len(v) for v in chosen.values())
    bar = _bar(total, f"reading {spec}", progress)
    with ThreadPoolExecutor(max_workers=4) as pool:
        for s in splits:
            images = []
            for image in pool.map(read, chosen[s]):
                bar.update(1)
                if image is not None:
                    images.append(image)
            out[s] = SplitImages(images, spec, s)
    bar.close()
    for s in splits:
        if not out[s].images:
            raise DatasetError(f"no image of the {s} split of {spec} could be read")
    return out


def trained_on(splits: dict[str, SplitImages],
               parent: provenance.TrainingImages | None = None) -> dict:
    """The ``trained_on`` block of a model's config.json: the content hashes of every
    image of its train and val splits (and of its parent's images, when fine-tuned), so
    a run can tell when it scores the model on one of them (:mod:`medbench.codecs.provenance`)."""
    dataset = next(iter(splits.values())).dataset
    return provenance.block(dataset, {
        name: [(image.meta.get("image_sha256"), image.meta.get("file_hash"))
               for image in split.images]
        for name, split in splits.items()}, parent)


def _bar(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="img", disable=not enabled, leave=False)


class CropBatches:
    """Random square crops of a split, as float batches ``(B, 1, c, c)`` in ``[0, 1]``."""

    def __init__(self, split: SplitImages, crop: int, stride: int, device: torch.device):
        sides = [min(im.height, im.width) for im in split.images]
        side = min(crop, min(sides))
        side -= side % stride
        if side < stride:
            raise DatasetError(
                f"images of {split.dataset} are smaller than one model block ({stride} px)"
            )
        self.crop, self.device, self.split = side, device, split
        self.peaks = np.array([peak_value(im.bit_depth) for im in split.images], np.float32)
        same = all(im.pixels.shape == (side, side) for im in split.images)
        self.on_device: torch.Tensor | None = None
        if same:  # the whole split lives on the device; a batch is an index
            stack = np.stack([im.pixels for im in split.images]).astype(np.float32)
            stack /= self.peaks[:, None, None]
            self.on_device = torch.from_numpy(stack).unsqueeze(1).to(device)

    def __len__(self) -> int:
        return len(self.split)

    def batches(self, batch_size: int, rng: np.random.Generator,
                repeat: int = 1) -> Iterator[torch.Tensor]:
        """One epoch: every image ``repeat`` times (a fresh crop each time), shuffled."""
        order = np.concatenate([rng.permutation(len(self.split)) for _ in range(repeat)])
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            flips = [d for d, f in ((2, rng.random() < 0.5), (3, rng.random() < 0.5)) if f]
            if self.on_device is not None:
                batch = self.on_device[torch.from_numpy(idx).to(self.device)]
                yield batch.flip(flips) if flips else batch
                continue
            crops = []
            for i in idx:
                pixels = self.split.images[i].pixels
                top = int(rng.integers(0, pixels.shape[0] - self.crop + 1))
                left = int(rng.integers(0, pixels.shape[1] - self.crop + 1))
                tile = pixels[top : top + self.crop, left : left + self.crop]
                crops.append(tile.astype(np.float32) / self.peaks[i])
            batch = torch.from_numpy(np.stack(crops)).unsqueeze(1)
            batch = batch.flip(flips) if flips else batch
            if self.device.type == "cuda":
                batch = batch.pin_memory()
            yield batch.to(self.device, non_blocking=True)
