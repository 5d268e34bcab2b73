"""Learned codecs in ``medbench run``: notes on, or training of, models a run lacks.

A run measures every trained model of a learned codec on every requested dataset (the
generalization matrix). When none of a codec's models was trained on a requested
dataset, the run says how to train one, or, with ``--train-missing``, trains the codec's
default ladder (its architecture's, :func:`ladder`) on that dataset's train split before
coding starts.

Training sits above the benchmark (``benchmark`` never imports ``training``), so the CLI
hands :func:`prepare_learned` to :func:`medbench.benchmark.runner.run`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from medbench.codecs import CodecContext, codec_names, get_codec, registry
from medbench.codecs.learned import archs
from medbench.codecs.learned.codec import LearnedCodec
from medbench.training.config import TrainConfig, train_command
from medbench.training.loop import train

log = logging.getLogger(__name__)

#: Ladders that replace an architecture's own (its ``ladder``, one RD point per model, low
#: to high rate; the same ladders made the shipped ``sample`` models, see
#: pretrained/README.md), by codec name. Empty unless a caller (a test) sets one.
LADDERS: dict[str, list[dict[str, Any]]] = {}


def ladder(arch: str) -> list[dict[str, Any]]:
    """The models ``--train-missing`` trains for architecture ``arch``."""
    if arch in LADDERS:
        return LADDERS[arch]
    return list(archs.get(arch).ladder) or [{}]


def learned_codecs(names: list[str] | None, context: CodecContext) -> list[LearnedCodec]:
    """The learned codecs among ``names`` (None: every registered codec)."""
    out = []
    for name in names if names is not None else codec_names():
        cls = registry.get(name)
        if isinstance(cls, type) and issubclass(cls, LearnedCodec):
            out.append(get_codec(name, context))  # type: ignore[arg-type]
    return out


def trained_on(codec: LearnedCodec, dataset: str) -> list[str]:
    """Settings of ``codec`` whose model was trained on ``dataset``."""
    return [
        name for name, ckpt in codec.checkpoints().items()
        if ckpt.config.get("train", {}).get("dataset") == dataset
    ]


def prepare_learned(
    codecs: list[str] | None,
    datasets: list[str],
    *,
    context: CodecContext,
    data_root: str | None,
    protocol: str,
    size: str | None,
    bit_depth: str | None,
    train_missing: bool,
    echo: Callable[[str], Any] = log.info,
    progress: bool = True,
) -> list[str]:
    """Train what is missing (``train_missing``) or return notes on what is missing.

    Parameters
    ----------
    codecs : list of str or None
        Codec names of the run (None: every registered codec); only learned ones count.
    datasets : list of str
        Dataset specs of the run.
    context : CodecContext
        Where models live (``models_dir``) and the device to train on.
    data_root, protocol, size, bit_depth
        As for the run; the models are trained on images prepared the same way.
    train_missing : bool
        Train :func:`ladder` for each (codec, dataset) without a model; otherwise only
        note how to.
    echo : callable
        Receives a line before each model is trained (and the training's own lines).
    progress : bool
        Show the training's progress bars.

    Returns
    -------
    list of str
        Notes for the run's output: models missing, or models trained.
    """
    notes = []
    for codec in learned_codecs(codecs, context):
        for spec in datasets:
            if trained_on(codec, spec):
                continue
            if not train_missing:
                if codec.checkpoints():
                    notes.append(
                        f"no {codec.name} model was trained on {spec}; its rows there come "
                        f"from models trained on other data. Train one with `medbench train "
                        f"--model {codec.name} --dataset {spec}`, or pass --train-missing"
                    )
                continue
            for rung in ladder(codec.arch):
                cfg = TrainConfig(
                    arch=codec.arch, dataset=spec, data_root=data_root, protocol=protocol,
                    size=size, bit_depth=bit_depth, device=context.device,
                    models_dir=str(context.models_dir), **rung,
                )
                echo(f"--train-missing: training {codec.name} {cfg.model_name} on {spec}")
                train(cfg, progress=progress, echo=echo, command=train_command(cfg))
            codec.forget_models()
            notes.append(f"trained {codec.name} models on {spec} (--train-missing) into "
                         f"{Path(context.models_dir) / codec.arch}")
    return notes
