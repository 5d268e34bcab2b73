"""What ``medbench run --resume`` takes from the earlier run, and what from its new command.

A run stores every field of its :class:`~medbench.benchmark.runner.RunConfig`. Resuming
restores them all; of the options given again on the new command line, those of
:data:`RESUME_MAY_CHANGE` apply to the rest of the run (where cells are coded, what is
written once they are, where the data now lies) and any other one that differs from the
stored value is refused, naming it: a run codes one set of codecs, targets, images and
protocol, never a mixture.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import fields, replace
from typing import Any, TypeVar

from medbench.errors import MedbenchError

#: RunConfig fields that say where cells are coded, not what is coded.
EXECUTION_FIELDS = ("executor", "workers", "scheduler", "cache_dir", "use_cache",
                    "learned_batch")
#: RunConfig fields given by each call and never stored with a run nor read from one: a
#: results folder received from someone must not carry the trust to run code. A resumed
#: run has them only when its command line gives them again.
CALL_ONLY_FIELDS = ("trust_byo",)
#: RunConfig fields a resumed run may take from its new command line: where cells are
#: coded, what is written once they are, and where the data now lies (each image's file
#: is checked against the hash the run recorded). Any other field defines the run.
RESUME_MAY_CHANGE = (*EXECUTION_FIELDS, "report", "write_dicom", "overwrite_dicom",
                     "data_root")
#: The ``medbench run`` option of each RunConfig field.
OPTIONS = {"codecs": "--codecs", "datasets": "--datasets", "data_root": "--data-root",
           "protocol": "--protocol", "size": "--size", "bit_depth": "--bit-depth",
           "split": "--split", "limit": "--limit", "seed": "--seed", "repeats": "--repeats",
           "models_dir": "--models", "device": "--device",
           "train_missing": "--train-missing", "masks": "--masks",
           "milestones": "--milestones", "target": "--target", "groups": "--groups",
           "group_by": "--group-by", "executor": "--executor",
           "workers": "--workers", "scheduler": "--scheduler",
           "learned_batch": "--learned-batch", "cache_dir": "--cache-dir",
           "use_cache": "--no-cache", "report": "--no-report",
           "write_dicom": "--write-dicom", "overwrite_dicom": "--overwrite-dicom",
           "observer": "--observer", "nodule_sizes": "--nodule-sizes",
           "nodule_contrasts": "--nodule-contrasts", "nodule_sites": "--nodule-sites",
           "metrics": "--metrics", "display": "--display",
           "keep_pixels": "--keep-pixels"}
#: Fields whose option turns something off (``--no-cache`` sets ``use_cache`` False).
OFF_FLAGS = ("use_cache", "report")

Config = TypeVar("Config")


def resumed_config(stored: Config, new: Config, given: Collection[str] | None,
                   run_id: str) -> tuple[Config, list[str]]:
    """The config a resumed run codes with, and the fields this command changed.

    Parameters
    ----------
    stored
        The earlier run's config, as stored.
    new
        The config this command line makes.
    given
        Fields whose option this command line gave; None (a call from Python): only the
        execution fields of ``new`` apply.
    run_id
        The earlier run, for the message.

    Raises
    ------
    MedbenchError
        A given field that defines the run differs from the stored one.
    """
    call = {n: getattr(new, n) for n in CALL_ONLY_FIELDS}  # this call's, never stored
    if given is None:
        return replace(stored, **{n: getattr(new, n) for n in EXECUTION_FIELDS}, **call), []
    changed = [f.name for f in fields(stored)
               if f.name in given and f.name not in CALL_ONLY_FIELDS
               and getattr(new, f.name) != getattr(stored, f.name)]
    refused = [name for name in changed if name not in RESUME_MAY_CHANGE]
    if refused:
        was = "; ".join(option_text(n, getattr(stored, n)) for n in refused)
        now = "; ".join(option_text(n, getattr(new, n)) for n in refused)
        raise MedbenchError(
            f"--resume continues run {run_id} as it was started, with {was}, not {now}: "
            f"drop {' and '.join(OPTIONS.get(n, n) for n in refused)} to continue it, or "
            "start a new run without --resume")
    return replace(stored, **{n: getattr(new, n) for n in changed}, **call), changed


def describe_changes(stored: Any, config: Any, changed: list[str]) -> str:
    """``--workers 2 (was 1); --no-report (was a report)`` for the resume message."""
    return "; ".join(f"{option_text(n, getattr(config, n))} (was "
                     f"{option_text(n, getattr(stored, n))})" for n in changed)


def option_text(name: str, value: Any) -> str:
    """How ``medbench run`` writes field ``name`` at ``value``: ``--codecs a,b``."""
    flag = OPTIONS.get(name, name)
    if name == "report":
        return "--report" if value else "--no-report"
    if name in OFF_FLAGS:
        return flag if not value else f"without {flag}"
    if isinstance(value, bool):
        return flag if value else f"without {flag}"
    if value is None:
        return f"{flag} all" if name == "codecs" else f"without {flag}"
    return f"{flag} {','.join(value) if isinstance(value, list) else value}"


def of_type(value: Any, kinds: str) -> bool:
    """Whether ``value`` is one of the annotation ``kinds`` (``"list[str] | None"``...);
    a kind not listed here accepts anything."""
    checks = {"None": lambda v: v is None, "str": lambda v: isinstance(v, str),
              "bool": lambda v: isinstance(v, bool),
              "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
              "list[str]": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v)}
    return any(checks.get(kind.strip(), lambda v: True)(value) for kind in kinds.split("|"))
