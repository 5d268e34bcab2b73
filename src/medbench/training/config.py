"""What defines one training run: :class:`TrainConfig`, and the command line that makes it."""

from __future__ import annotations

import re
import shlex
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from medbench.codecs.learned import archs
from medbench.codecs.learned.postfilter import CODEC as POSTFILTER
from medbench.errors import MedbenchError
from medbench.training.budget import Budget, parse_budget
from medbench.training.transfer import check_parent

OBJECTIVES = ("mse", "rd")


def trainable() -> list[str]:
    """What ``medbench train --model`` trains: every registered architecture
    (:mod:`medbench.codecs.learned.archs`) and the JPEG 2000 post-filter
    (:mod:`medbench.training.postfilter`)."""
    return [*archs.names(), POSTFILTER]

#: Keys that must match for a run to resume an unfinished one in the same folder.
RESUME_KEYS = ("arch", "latent", "width", "objective", "lmbda", "dataset", "protocol",
               "size", "bit_depth", "batch_size", "lr", "crop", "repeat", "seed", "limit",
               "budget", "steps", "init", "ratio")
#: ``medbench train`` flag of each field (what :func:`train_command` writes).
FLAGS = {"data_root": "--data-root", "protocol": "--protocol", "size": "--size",
         "bit_depth": "--bit-depth", "epochs": "--epochs", "batch_size": "--batch-size",
         "lr": "--lr", "objective": "--objective", "lmbda": "--lmbda",
         "latent": "--latent", "width": "--width", "patience": "--patience",
         "crop": "--crop", "repeat": "--repeat", "limit": "--limit", "seed": "--seed",
         "name": "--name", "device": "--device", "models_dir": "--models",
         "budget": "--budget", "steps": "--steps", "init": "--init", "ratio": "--ratio"}


@dataclass
class TrainConfig:
    """Everything that defines a training run (written to the model's config.json).

    Each field is the ``medbench train`` option of the same name (see ``FLAGS``).

    Parameters
    ----------
    arch : str
        Architecture: one registered in :mod:`medbench.codecs.learned.archs` (``ae``,
        ``cnn``, ``dcae``, ``hyperprior``, ``ckbd`` ...), or ``jpeg2000+pf`` (a
        post-filter for JPEG 2000 at ``ratio``).
    dataset : str
        Dataset spec as on the command line (``jsrt``, ``folder:PATH``...); the model
        trains on its train split and stops early on its val split.
    data_root : str, optional
        Folder holding one sub-folder per dataset.
    protocol, size, bit_depth : str, optional
        How images are prepared (``paper``: 256×256, 8-bit), as for ``medbench run``.
    epochs : int, optional
        Most epochs to run. None: 30 without a budget, no epoch limit with one.
    batch_size : int
        Crops per optimisation step.
    lr : float
        Adam step size of the autoencoder (the latent density learns 10× faster).
    objective : str
        ``mse`` (distortion only, the seed paper's loss) or ``rd`` (``D + λ·R``).
    lmbda : float, optional
        λ of the ``rd`` objective (larger: lower rate); must be None for ``mse``.
    latent : int, optional
        Latent channels; None takes the architecture's default.
    width : int, optional
        Hidden channels; None takes the architecture's default.
    patience : int
        Epochs without a better validation loss before training stops (epoch-based
        training only: a budgeted run validates at its milestones and keeps its last
        weights).
    crop : int
        Side of the random square training crops, in pixels.
    repeat : int
        Crops per training image per epoch (for small datasets).
    seed : int
        Seed of the ``limit`` sample, the initial weights, crops, flips and rate noise.
    limit : int, optional
        At most this many images per split: a sample of whole groups drawn with ``seed``,
        as ``medbench run --limit N --seed S`` draws it.
    device : str
        ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
    models_dir : str
        Folder of trained models; the model goes to ``<models_dir>/<arch>/<name>`` and
        the dataset's split manifest to ``<models_dir>/manifests/``.
    name : str, optional
        Model (setting) name; None gives ``<dataset>-l<latent>[-lam<λ>]``, plus
        ``-from-<parent dataset>`` for a model fine-tuned from ``init``.
    budget : str, optional
        Train for this much device time (``90s``, ``20m``, ``1.5h``; see
        :mod:`medbench.training.budget`), with a cosine learning-rate decay over it and
        milestone checkpoints kept in ``<model>/milestones/``.
    steps : int, optional
        Train for this many optimisation steps instead (same schedule, step ladder).
        ``budget`` and ``steps`` exclude each other; with either, ``epochs`` (when given)
        only caps the run and ``patience`` does not apply.
    init : str, optional
        Folder of a finished model to start from (fine-tuning): same architecture,
        latent, width and density components; ``latent``/``width`` default to its.
    ratio : float, optional
        ``jpeg2000+pf`` only (and required there): the JPEG 2000 ratio whose decodes the
        filter learns to clean.
    half : bool
        Store the finished model's weights as float16 (half the bytes, for shipping):
        the weights are rounded before the coding tables are frozen and the model is
        validated, so it is validated as stored. A finished float32 model is rounded and
        stored again without training.

    Raises
    ------
    MedbenchError
        For an unknown architecture or objective, a λ that does not fit the objective,
        or a count below one.
    """

    arch: str
    dataset: str
    data_root: str | None = None
    protocol: str = "paper"
    size: str | None = None
    bit_depth: str | None = None
    epochs: int | None = None
    batch_size: int = 4
    lr: float = 1e-3
    objective: str = "mse"
    lmbda: float | None = None
    latent: int | None = None
    width: int | None = None
    patience: int = 5
    crop: int = 256
    repeat: int = 1
    seed: int = 0
    limit: int | None = None
    device: str = "auto"
    models_dir: str = "medbench-models"
    name: str | None = None
    budget: str | None = None
    steps: int | None = None
    init: str | None = None
    ratio: float | None = None
    half: bool = False

    def __post_init__(self) -> None:
        if self.arch not in trainable():
            raise MedbenchError(
                f"unknown model {self.arch!r}; known models: {', '.join(trainable())}"
            )
        if (self.arch == POSTFILTER) != (self.ratio is not None):
            raise MedbenchError(
                f"--ratio R (the JPEG 2000 ratio to filter, e.g. --ratio 40) goes with "
                f"--model {POSTFILTER} and only with it"
            )
        if self.ratio is not None and not 1 < self.ratio <= 1000:
            raise MedbenchError(f"--ratio must lie above 1 and at most 1000, not {self.ratio:g}")
        if self.arch == POSTFILTER and (self.objective != "mse" or self.init is not None
                                        or self.latent is not None):
            raise MedbenchError(
                f"--model {POSTFILTER} trains a post-filter on the MSE: --objective rd, "
                f"--lmbda, --latent and --init do not apply to it"
            )
        if self.objective not in OBJECTIVES:
            raise MedbenchError(f"--objective must be mse or rd, not {self.objective!r}")
        if self.objective == "rd" and (self.lmbda is None or self.lmbda <= 0):
            raise MedbenchError("--objective rd needs a positive --lmbda, e.g. --lmbda 0.001")
        if self.objective == "mse" and self.lmbda is not None:
            raise MedbenchError("--lmbda only applies to --objective rd; drop it or add "
                                "--objective rd")
        if self.budget is not None or self.steps is not None:
            self.budget_rule()  # one of them, and well formed
        elif self.epochs is None:
            self.epochs = 30
        for key in ("epochs", "batch_size", "patience", "crop", "repeat"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise MedbenchError(f"--{key.replace('_', '-')} must be >= 1")
        self._parent: dict[str, Any] | None = None
        if self.init is not None:
            self._parent = check_parent(self)
        if self.latent is None and self.arch != POSTFILTER:
            self.latent = archs.get(self.arch).latent
        if self.name is not None:
            check_model_name(self.name)

    @property
    def model_name(self) -> str:
        """Folder and setting name: ``<dataset>-l<latent>[-lam<λ>]`` (a post-filter:
        ``<dataset>-ratio<R>``) unless ``--name``."""
        if self.name:
            return self.name
        slug = re.sub(r"[^A-Za-z0-9]+", "-", self.dataset.rsplit("/", 1)[-1]).strip("-")
        if self.ratio is not None:
            return f"{slug or 'data'}-ratio{self.ratio:g}"
        name = f"{slug or 'data'}-l{self.latent}"
        if self.objective == "rd":
            name += f"-lam{self.lmbda:g}"
        if self._parent is not None:
            parent = str(self._parent.get("train", {}).get("dataset") or "model")
            name += "-from-" + (re.sub(r"[^A-Za-z0-9]+", "-", parent.rsplit("/", 1)[-1])
                                .strip("-") or "model")
        return name

    def budget_rule(self) -> Budget | None:
        """The run's :class:`~medbench.training.budget.Budget`; None for epoch-based runs."""
        if self.budget is None and self.steps is None:
            return None
        seconds = parse_budget(self.budget) if self.budget is not None else None
        return Budget(seconds=seconds, steps=self.steps)

    @property
    def parent(self) -> dict[str, Any] | None:
        """The config.json of the ``init`` model (None when training from scratch)."""
        return self._parent

    @property
    def folder(self) -> Path:
        """Where the model is written: ``<models_dir>/<arch>/<model_name>``."""
        return Path(self.models_dir) / self.arch / self.model_name

    def resume_key(self) -> dict[str, Any]:
        """The values an unfinished run in :attr:`folder` must share to be resumed."""
        values = asdict(self)
        return {k: values[k] for k in RESUME_KEYS}


def check_model_name(name: str) -> None:
    """Raise unless ``name`` is one plain path component (the model folder's name).

    ``--name ../../x`` would otherwise write outside ``--models``; names starting with a
    dot would be hidden folders, and ``\\`` separates paths on Windows.
    """
    bad = (not name or name in (".", "..") or name.startswith(".")
           or any(ch in name for ch in "/\\\0"))
    if bad:
        raise MedbenchError(
            f"--name {name!r} is not a plain folder name; use letters, digits, '-' or '_' "
            f"without '/', '\\', NUL or a leading '.', e.g. --name chest-l16"
        )


def train_command(cfg: TrainConfig) -> str:
    """The ``medbench train`` command line that trains ``cfg`` (recorded with the model).

    Parameters
    ----------
    cfg : TrainConfig
        The run to describe.

    Returns
    -------
    str
        A shell-quoted command line naming only the options that differ from the defaults.
    """
    defaults = TrainConfig(arch=cfg.arch, dataset=cfg.dataset, ratio=cfg.ratio)
    parts = ["medbench", "train", "--model", cfg.arch, "--dataset", cfg.dataset]
    if cfg.ratio is not None:  # required, so never "the default"
        parts += ["--ratio", f"{cfg.ratio:g}"]
    for key, flag in FLAGS.items():
        value = getattr(cfg, key)
        if value is not None and value != getattr(defaults, key):
            parts += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
    return " ".join(shlex.quote(p) for p in parts)
