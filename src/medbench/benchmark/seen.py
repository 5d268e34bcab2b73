"""Before coding: does this run score a learned model on images it trained on?

A run whose learned models trained or validated on some of the images it is about to
code would report numbers that look better than they are, whatever the dataset is called
or the files are named (``folder:`` on a copy of the training images, ``--split train``).
:func:`seen_warnings` compares, before anything is coded, the SHA-256 of each chosen
image's file (known for datasets read from files, see the split manifest) with the file
hashes each model records (:mod:`medbench.codecs.provenance`), and says which models saw
how many images. The rows then say it image by image (``seen_in_training``, which also
matches by pixel content, so a re-saved copy is caught there), and reports leave such
images out (:mod:`medbench.reports.seen`).
"""

from __future__ import annotations

from collections.abc import Sequence

from medbench.benchmark.rows import WorkUnit
from medbench.codecs.base import Codec


def seen_warnings(codecs: Sequence[Codec], units: Sequence[WorkUnit]) -> list[str]:
    """One line per dataset whose chosen images some model trained or validated on, and
    one per learned codec whose models record no training images.

    Parameters
    ----------
    codecs
        The run's codecs (those without trained models are passed over).
    units
        The run's work units; images without a file hash cannot be checked here.

    Returns
    -------
    list of str
        Warnings for the console, in dataset and codec order.
    """
    models = []  # (label, TrainingImages)
    unknown: dict[str, int] = {}
    for codec in codecs:
        if codec.kind != "learned":
            continue
        for setting in codec.settings():
            try:
                images = codec.training_images(setting)
            except Exception:  # noqa: BLE001 (a broken model is reported when it is coded)
                continue
            if images is None:
                unknown[codec.name] = unknown.get(codec.name, 0) + 1
            else:
                models.append((f"{codec.name} {setting}", images))
    lines = []
    by_dataset: dict[str, list[WorkUnit]] = {}
    for unit in units:
        by_dataset.setdefault(unit.dataset, []).append(unit)
    for dataset, members in by_dataset.items():
        hashed = [u for u in members if u.record.meta.get("file_hash")]
        seen_by: dict[str, int] = {}
        seen_images = set()
        for unit in hashed:
            for label, images in models:
                if images.seen(None, unit.record.meta["file_hash"]):
                    seen_by[label] = seen_by.get(label, 0) + 1
                    seen_images.add(unit.record.image_id)
        if seen_images:
            names = _models_text(seen_by)
            lines.append(
                f"{dataset}: {len(seen_images)} of {len(members)} images are training or "
                f"validation images of {names} (same file content); their rows say "
                f"seen_in_training and reports leave these images out of every comparison")
    for name, count in unknown.items():
        lines.append(f"{name}: {count} model(s) record no training images, so their rows "
                     f"cannot be checked for images they trained on (for models medbench "
                     f"trained before it kept the list: `medbench provenance MODEL_DIR "
                     f"--data-root DIR`)")
    return lines


def _models_text(seen_by: dict[str, int]) -> str:
    """``hyperprior nih-l48-lam0.01 and 3 other models``-style text, most images first."""
    ordered = sorted(seen_by, key=lambda label: (-seen_by[label], label))
    codecs = sorted({label.split(" ")[0] for label in ordered})
    if len(ordered) == 1:
        return ordered[0]
    return f"{len(ordered)} models ({', '.join(codecs)})"
