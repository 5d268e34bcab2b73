"""The images a stored run coded, chosen again from their dataset (``datasets export
--results``).

A run records the images it chose (``run_images`` in its store) beside its arguments, and
keeps each dataset's split manifest in ``OUT/manifests/``. :func:`stored_choice` reads
both, so a later command revisits exactly that run's images, even after files were added
to the dataset. For a store written before runs recorded their images, the run's sample
is drawn again from its arguments (split, ``--limit``, ``--seed``) and its manifest, as
:func:`medbench.benchmark.runner.plan_run` drew it. Nothing in the results folder is
written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from medbench.benchmark.runner import RunConfig
from medbench.benchmark.store import ResultsStore
from medbench.datasets import Dataset, Record
from medbench.datasets.manifest import SplitManifest, choose_records, uses_manifest
from medbench.errors import MedbenchError


@dataclass(frozen=True)
class StoredChoice:
    """One stored run's arguments and the images it recorded, per dataset spec."""

    results: Path
    run_id: str
    config: RunConfig
    #: Dataset spec → image ids the run recorded (no entry: a store from before that).
    images: dict[str, list[str]]

    def records(self, spec: str, dataset: Dataset) -> tuple[list[Record], list[str]]:
        """The run's records of dataset ``spec`` and the recorded ids no longer found.

        Parameters
        ----------
        spec
            A dataset spec of the run, as it was typed (``nih``, ``folder:PATH``).
        dataset
            That dataset, opened.

        Returns
        -------
        tuple of (list of Record, list of str)
            Records sorted by id, each with its split from the run's manifest; the ids
            the run recorded that the dataset no longer has.

        Raises
        ------
        MedbenchError
            The run coded no image of ``spec``, or its split manifest is gone.
        """
        if spec not in self.config.datasets:
            raise MedbenchError(
                f"run {self.run_id} in {self.results} coded no {spec} images (its datasets: "
                f"{', '.join(self.config.datasets)}); export one of those")
        manifest = run_manifest(self.results, spec, dataset)
        ids = self.images.get(spec)
        if not ids:  # a store from before runs recorded their images: the same draw again
            config = self.config
            return choose_records(dataset, config.split, config.limit, manifest,
                                  config.seed), []
        wanted = set(ids)
        found = [r for r in choose_records(dataset, "all", None, manifest)
                 if r.image_id in wanted]
        return found, sorted(wanted - {r.image_id for r in found})


def run_manifest(folder: Path, spec: str, dataset: Dataset) -> SplitManifest | None:
    """The split manifest of ``spec`` kept in ``folder/manifests/`` (a run's ``--out``, a
    training's ``--models``), read only; None for datasets that keep none (``sample``).

    Raises
    ------
    MedbenchError
        The dataset keeps a manifest but ``folder`` holds none for it.
    """
    if not uses_manifest(dataset):
        return None
    manifest = SplitManifest.in_folder(folder, spec, dataset.name)
    if not manifest.path.is_file():
        raise MedbenchError(f"{folder} holds no split manifest of {spec} ({manifest.path}); "
                            f"name the --out of the run (or the --models of the training) "
                            f"that chose its images")
    return manifest


def stored_choice(results: Path, run_id: str | None = None) -> StoredChoice:
    """The arguments and recorded images of run ``run_id`` (default: the latest) in the
    results folder ``results`` (opened read-only).

    Raises
    ------
    MedbenchError
        There is no readable store in ``results``, it holds no run, or not ``run_id``.
    """
    store = ResultsStore.open_existing(results)
    try:
        run_id = store.run_or_latest(run_id)
        config = RunConfig.from_dict(store.run_info(run_id)["arguments"])
        images: dict[str, list[str]] = {}
        for spec, image_id, _, _ in store.run_images(run_id):
            images.setdefault(spec, []).append(image_id)
    finally:
        store.close()
    return StoredChoice(Path(results), run_id, config, images)


__all__ = ["StoredChoice", "run_manifest", "stored_choice"]
