"""The training loop of ``medbench train``: fit one model on a dataset's train split, stop
early on its val split (splits chosen as in ``medbench run``, see :mod:`.data`).

Objectives (``D`` is the MSE on the ``[0, 1]`` scale, ``R`` the estimated bits per pixel):

``mse``  minimise ``D`` (the seed paper's loss). The density of the latents is fitted
         alongside on detached latents, so it shapes the coding tables but never the
         autoencoder: the rate is whatever entropy coding the latents costs.
``rd``   minimise ``D + λ·R``; a larger λ gives a lower rate.

The rate estimate uses additive uniform noise on the latents (Ballé et al. 2017); the
decoder sees the rounded latents through a straight-through gradient, as at test time
("mixed" quantization, Minnen & Singh 2020). After each epoch the model is scored on the
validation split with rounded latents; the learning rate halves after every 3 epochs
without a better validation loss, training stops after ``patience`` such epochs and keeps
the best epoch. The last epoch's weights and optimizer state are saved each epoch, so an
interrupted run resumes where it stopped.
At the end the density is frozen into integer coding tables and the real validation
rate (bytes of actual bitstreams) is measured and written to ``config.json``.

References
----------
D. Minnen, S. Singh, "Channel-wise autoregressive entropy models for learned image
compression", ICIP 2020, arXiv:2007.08739 (mixed quantization).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from medbench import __version__
from medbench.codecs.learned.checkpoint import (
    CONFIG,
    MILESTONES,
    Checkpoint,
    CompressionModel,
    new_model,
    read_checkpoint,
    save_checkpoint,
)
from medbench.codecs.learned.coding import resolve_device
from medbench.datasets.protocols import parse_protocol
from medbench.errors import MedbenchError
from medbench.training.budget import Budget, crop_at, lr_factor
from medbench.training.config import TrainConfig
from medbench.training.data import CropBatches, SplitImages, load_splits, trained_on
from medbench.training.finished import check_finished
from medbench.training.transfer import load_parent_weights, parent_images, parent_record
from medbench.training.validation import evaluate, measure_split

log = logging.getLogger(__name__)

STATE_JSON, LAST, BEST = "train_state.json", "last.safetensors", "best.safetensors"
#: A budgeted run saves its resumable state at least this often (and at each milestone).
STATE_EVERY_S = 30.0
#: Epochs without a better validation loss after which the learning rate halves.
LR_PATIENCE = 3
#: Largest gradient norm of the autoencoder's parameters per step.
GRAD_CLIP = 1.0


@dataclass
class TrainResult:
    """What :func:`train` gives back: the finished model, and whether it was made now."""

    checkpoint: Checkpoint
    already_trained: bool = False
    resumed_from_epoch: int = 0


@dataclass
class _State:
    """What an interrupted run needs to go on (saved as train_state.json)."""

    key: dict[str, Any]
    epoch: int = 0
    best_epoch: int = 0
    best_loss: float = math.inf
    stale: int = 0
    steps: int = 0
    images_seen: int = 0
    wall_s: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)


def train(cfg: TrainConfig, *, progress: bool = True, echo: Callable[[str], Any] = log.info,
          command: str | None = None) -> TrainResult:
    """Train (or resume) the model ``cfg`` describes; returns its finished checkpoint.

    A folder that already holds the finished model is left as it is; one holding an
    unfinished run with the same settings (:meth:`TrainConfig.resume_key`) is resumed
    after its last finished epoch.

    Parameters
    ----------
    cfg : TrainConfig
        The model, the data and the schedule; the model goes to ``cfg.folder``.
    progress : bool
        Show tqdm bars (reading, each epoch); without them each epoch's line is echoed.
    echo : callable
        Receives one line per event a user should see (resumed, saved, already trained).
    command : str, optional
        The command line recorded in the model's config.json (see
        :func:`~medbench.training.config.train_command`).

    Returns
    -------
    TrainResult
        The checkpoint, ``already_trained`` when nothing was trained, and the epoch a
        resumed run started after (``resumed_from_epoch``, 0 for a fresh run).

    Raises
    ------
    MedbenchError
        When the dataset cannot be read, a split is empty, or the folder holds an
        unfinished run with other settings.
    """
    folder = cfg.folder
    said: list[str] = []
    if (done := already_trained(cfg, read_checkpoint, f"{cfg.arch} model", said.append)) \
            is not None:
        if cfg.half and done.checkpoint.config.get("weights") != "float16":
            return _halve(cfg, done.checkpoint, progress, echo)
        for line in said:
            echo(line)
        return done
    device = resolve_device(cfg.device)
    protocol = parse_protocol(cfg.protocol, cfg.size, cfg.bit_depth)
    root = Path(cfg.data_root) if cfg.data_root else None
    splits = load_splits(cfg.dataset, root, protocol, limit=cfg.limit, progress=progress,
                         manifest_dir=Path(cfg.models_dir), seed=cfg.seed)

    with torch.random.fork_rng(devices=[]):  # seeded init without touching global state
        torch.manual_seed(cfg.seed)
        model = new_model(cfg.arch, cfg.latent, cfg.width).to(device)
    if cfg.init is not None:
        load_parent_weights(model, cfg)
    optimizer = torch.optim.Adam([
        {"params": model.net.parameters(), "lr": cfg.lr},
        # The density tracks the latents' scale, which moves fast early on.
        {"params": model.density.parameters(), "lr": cfg.lr * 10},
    ])
    budget = cfg.budget_rule()
    full = CropBatches(splits["train"], cfg.crop, model.stride, device)
    data = {full.crop: full}
    state = _State(key=cfg.resume_key())
    resumed = _resume(folder, cfg, state, model, optimizer, device)
    start_epoch = state.epoch
    if resumed:
        echo(f"resuming {cfg.arch} {cfg.model_name} after epoch {state.epoch}")
    else:
        folder.mkdir(parents=True, exist_ok=True)
        if cfg.init is None:  # a parent's density already fits its latents
            first = next(full.batches(cfg.batch_size, np.random.default_rng(cfg.seed)))
            with torch.no_grad():
                model.init_density(first)

    lmbda = float(cfg.lmbda or 0.0)
    run = _Run(cfg, model, optimizer, state, lmbda, device, budget, folder, splits, echo)
    run.full_side = full.crop
    while not run.finished():
        state.epoch += 1
        side = full.crop
        if budget is not None:
            side = crop_at(budget.progress(state.wall_s, state.steps), full.crop, model.stride)
            if side not in data:
                data[side] = CropBatches(splits["train"], side, model.stride, device)
        train_loss, bar = run.epoch(data[side], progress)
        if budget is not None:  # validated at milestones; the last weights are kept
            bar.close()
            run.save_state_now(force=run.finished())
            continue
        val = evaluate(model, splits["val"], device, lmbda)
        bar.set_postfix({"loss": f"{train_loss:.3g}", "val_psnr": f"{val['psnr']:.2f}",
                         "est_bpp": f"{val['est_bpp']:.3f}"})
        bar.close()
        record = {"epoch": state.epoch, "train_loss": train_loss, **val}
        state.history.append(record)
        if val["loss"] < state.best_loss:
            state.best_loss, state.best_epoch, state.stale = val["loss"], state.epoch, 0
            save_file(_tensors(model), str(folder / BEST))
        else:
            state.stale += 1
            if state.stale % LR_PATIENCE == 0:  # plateau: halve the step size
                for group in optimizer.param_groups:
                    group["lr"] *= 0.5
        _save_state(folder, state, model, optimizer)
        line = (f"{cfg.arch} {cfg.model_name} epoch {state.epoch}/{cfg.epochs}: "
                f"loss {train_loss:.3g}, val PSNR {val['psnr']:.2f} dB, "
                f"est. {val['est_bpp']:.3f} bpp")
        (log.info if progress else echo)(line)

    if budget is None:
        model.load_state_dict(load_file(str(folder / BEST)))
        best_record = state.history[state.best_epoch - 1]
    else:
        best_record = run.final_record()
    if cfg.half:  # before the tables and the validation: validated as stored
        model.round_to_half()
    model.freeze_tables()
    model.eval()
    measured = measure_split(model, splits["val"], device)
    config = _config_json(cfg, state, splits, device, measured, best_record, command)
    if cfg.half:
        config["weights"] = "float16"
    ckpt = save_checkpoint(model, folder, config, half=cfg.half)
    for name in (LAST, BEST, STATE_JSON):  # the history is in config.json now
        (folder / name).unlink(missing_ok=True)
    how = (f"best epoch {state.best_epoch} of {state.epoch}" if budget is None
           else f"{state.steps} steps")
    echo(f"saved {cfg.arch} model {cfg.model_name} to {folder}: validation "
         f"{measured['bpp']:.3f} bpp, {measured['psnr']:.2f} dB PSNR ({how}, "
         f"{state.wall_s:.0f} s on {device.type})")
    return TrainResult(ckpt, resumed_from_epoch=start_epoch)


def _halve(cfg: TrainConfig, ckpt, progress: bool, echo: Callable[[str], Any]) -> TrainResult:
    """Store the finished float32 model ``ckpt`` again with float16 weights (``--half``):
    rounded, its tables frozen again from the rounded density, validated again on the
    val split; the numbers it was validated with before are kept beside."""
    device = resolve_device(cfg.device)
    protocol = parse_protocol(cfg.protocol, cfg.size, cfg.bit_depth)
    root = Path(cfg.data_root) if cfg.data_root else None
    splits = load_splits(cfg.dataset, root, protocol, limit=cfg.limit, progress=progress,
                         manifest_dir=Path(cfg.models_dir), seed=cfg.seed)
    model = ckpt.load(device)
    model.round_to_half()
    model.freeze_tables()
    measured = measure_split(model, splits["val"], device)
    config = {k: v for k, v in ckpt.config.items() if k not in ("format", "model_id")}
    before = config.get("validation") if isinstance(config.get("validation"), dict) else {}
    config["validation"] = {**before, "bpp": measured["bpp"], "psnr": measured["psnr"],
                            "float32": {k: before.get(k) for k in ("bpp", "psnr")}}
    config["weights"] = "float16"
    saved = save_checkpoint(model, cfg.folder, config, half=True)
    echo(f"stored {cfg.arch} model {cfg.model_name} with float16 weights: validation "
         f"{measured['bpp']:.3f} bpp, {measured['psnr']:.2f} dB PSNR (float32: "
         f"{before.get('bpp', math.nan):.3f} bpp, {before.get('psnr', math.nan):.2f} dB)")
    return TrainResult(saved, already_trained=True)


def _step_losses(model: CompressionModel, x: torch.Tensor, lmbda: float, rd: bool,
                 generator: torch.Generator,
                 amp: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(optimised loss, distortion, estimated bpp) of one batch.

    ``amp``: the transforms run under bf16 autocast (CUDA only); the rate is always
    computed in float32, where the densities' tails need the precision.
    """
    # mse objective: the rate term reaches only the entropy model (latents detached).
    x_hat, bits = model.forward_rd(x, generator, rate_grad=rd, amp=amp)
    distortion = F.mse_loss(x_hat.float(), x)
    pixels = x.shape[0] * x.shape[-2] * x.shape[-1]
    bpp = bits.sum() / pixels
    loss = distortion + lmbda * bpp if rd else distortion + bpp
    return loss, distortion, bpp


class _Run:
    """One training run's steps, budget, schedule and milestones."""

    def __init__(self, cfg: TrainConfig, model: CompressionModel, optimizer, state: _State,
                 lmbda: float, device: torch.device, budget: Budget | None, folder: Path,
                 splits: dict[str, SplitImages], echo: Callable[[str], Any]):
        self.cfg, self.model, self.optimizer, self.state = cfg, model, optimizer, state
        self.lmbda, self.device, self.budget, self.folder = lmbda, device, budget, folder
        self.splits, self.echo = splits, echo
        self.base_lrs = [cfg.lr, cfg.lr * 10]  # autoencoder, density (as built above)
        self.amp = budget is not None and device.type == "cuda"
        self.pending = [] if budget is None else [
            (amount, label) for amount, label in budget.milestones()
            if not (folder / MILESTONES / label / CONFIG).is_file()]
        self.saved_at = time.perf_counter()
        self.full_side = cfg.crop  # side of the large crops (the images may be smaller)

    def finished(self) -> bool:
        cfg, state = self.cfg, self.state
        if cfg.epochs is not None and state.epoch >= cfg.epochs:
            return True
        if self.budget is None:
            return state.stale >= cfg.patience
        return self.budget.done(state.wall_s, state.steps)

    def epoch(self, data: CropBatches, progress: bool) -> tuple[float, Any]:
        """One pass over the train split (cut short by the budget or a crop change)."""
        from tqdm import tqdm

        cfg, state, model, budget = self.cfg, self.state, self.model, self.budget
        model.train()
        rng = np.random.default_rng([cfg.seed, state.epoch])
        generator = torch.Generator(device=self.device).manual_seed(
            cfg.seed * 100_003 + state.epoch)
        n_batches = math.ceil(len(data) * cfg.repeat / cfg.batch_size)
        of = cfg.epochs if cfg.epochs is not None else "-"
        bar = tqdm(total=n_batches, desc=f"{cfg.arch} {cfg.model_name} {state.epoch}/{of}",
                   unit="batch", disable=not progress, leave=True, dynamic_ncols=True)
        total, count = 0.0, 0
        rd = cfg.objective == "rd"

        def loss_of(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
            loss, distortion, _ = _step_losses(model, x, self.lmbda, rd, generator, self.amp)
            return loss, (loss if rd else distortion), int(x.shape[0])

        steps = train_steps(data.batches(cfg.batch_size, rng, cfg.repeat), loss_of,
                            self.optimizer, state, budget=budget, base_lrs=self.base_lrs,
                            clip=model.net.parameters)
        for shown, n in steps:
            total, count = total + shown * n, count + n
            bar.update(1)
            bar.set_postfix(loss=f"{total / count:.3g}")
            if budget is not None:
                self._milestones(total / count)  # not training time: steps() times only steps
                if budget.done(state.wall_s, state.steps):
                    break
                new = budget.progress(state.wall_s, state.steps)
                if data.crop < self.full_side and crop_at(new, self.full_side,
                                                          model.stride) != data.crop:
                    break  # the large-crop phase starts with the next epoch
        return total / max(count, 1), bar  # the caller adds the val metrics and closes it

    def _milestones(self, train_loss: float) -> None:
        """Save every milestone the budget has just passed (at most one per step)."""
        used = self.budget.used(self.state.wall_s, self.state.steps)
        passed = [m for m in self.pending if used >= m[0]]
        if not passed:
            return
        self.pending = [m for m in self.pending if used < m[0]]
        label = passed[-1][1]  # several rungs in one step: keep the largest
        self._save_milestone(label, train_loss)

    def _save_milestone(self, label: str, train_loss: float) -> None:
        cfg, state, model = self.cfg, self.state, self.model
        val = evaluate(model, self.splits["val"], self.device, self.lmbda)
        record = {"epoch": state.epoch, "steps": state.steps, "milestone": label,
                  "train_loss": train_loss, **val}
        state.history.append(record)
        model.freeze_tables()
        try:
            config = {
                "name": f"{cfg.model_name}@{label}",
                "objective": cfg.objective,
                "lmbda": cfg.lmbda,
                "medbench_version": __version__,
                "milestone": {"label": label, "of": cfg.model_name},
                "train": {"dataset": cfg.dataset,
                          "protocol": parse_protocol(cfg.protocol, cfg.size,
                                                     cfg.bit_depth).name,
                          "epochs_run": state.epoch, "batch_size": cfg.batch_size,
                          "lr": cfg.lr, "crop": cfg.crop, "seed": cfg.seed},
                "budget": budget_block(self.device, state.wall_s, state.steps,
                                       state.images_seen),
                "validation": {"est_bpp": val["est_bpp"], "psnr": val["psnr"],
                               "loss": val["loss"]},
                "trained_on": trained_on(self.splits, parent_images(cfg)),
            }
            parent = parent_record(cfg)
            if parent is not None:
                config["parent"] = parent
            save_checkpoint(model, self.folder / MILESTONES / label, config)
        finally:
            model.tables = None
        self.save_state_now(force=True)
        self.echo(f"{cfg.arch} {cfg.model_name} milestone {label}: {state.steps} steps, "
                  f"val PSNR {val['psnr']:.2f} dB, est. {val['est_bpp']:.3f} bpp")

    def save_state_now(self, force: bool = False) -> None:
        """Resumable state, at most every :data:`STATE_EVERY_S` seconds unless forced."""
        if force or time.perf_counter() - self.saved_at >= STATE_EVERY_S:
            _save_state(self.folder, self.state, self.model, self.optimizer)
            self.saved_at = time.perf_counter()

    def final_record(self) -> dict[str, Any]:
        """Validation of the weights a budgeted run ends with (from its last milestone)."""
        last = self.state.history[-1] if self.state.history else None
        if last is None or last.get("steps") != self.state.steps:
            val = evaluate(self.model, self.splits["val"], self.device, self.lmbda)
            last = {"epoch": self.state.epoch, "steps": self.state.steps, **val}
            self.state.history.append(last)
        return last


class Counters(Protocol):
    """What :func:`train_steps` counts (a run's resumable state has these fields)."""

    steps: int
    images_seen: int
    wall_s: float


def train_steps(batches: Iterable[Any],
                loss_of: Callable[[Any], tuple[torch.Tensor, torch.Tensor, int]],
                optimizer: torch.optim.Optimizer, counters: Counters, *,
                budget: Budget | None, base_lrs: list[float],
                clip: Callable[[], Iterable[torch.nn.Parameter]] | None = None
                ) -> Iterator[tuple[float, int]]:
    """The optimisation steps of every model ``medbench train`` makes (the learned codecs
    and the ``jpeg2000+pf`` post-filter): one step per batch of ``batches``.

    Under a ``budget`` each step first sets the learning rates (:func:`schedule_lr`, one
    base per parameter group). ``loss_of(batch)`` gives the loss to minimise, the value
    to show and the batch's images; the gradient norm of ``clip()``'s parameters is
    clipped to :data:`GRAD_CLIP` when given. ``counters`` gain one step, the images and
    the seconds from fetching the batch to the step's end (what a budget spends: the
    caller's work between steps, such as milestones, is not counted). Yields the shown
    value (a float: it waits for the device) and the images, after each step; the
    caller stops when its budget or epoch is done.
    """
    tick = time.perf_counter()
    for batch in batches:
        if budget is not None:
            schedule_lr(optimizer, base_lrs, budget, counters.wall_s, counters.steps)
        loss, shown, n = loss_of(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip is not None:  # one bad batch of a tiny dataset must not blow weights up
            torch.nn.utils.clip_grad_norm_(clip(), GRAD_CLIP)
        optimizer.step()
        value = float(shown.item())  # .item() waits for the device
        counters.steps += 1
        counters.images_seen += n
        counters.wall_s += time.perf_counter() - tick
        yield value, n
        tick = time.perf_counter()


def _tensors(model: CompressionModel) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def _save_state(folder: Path, state: _State, model, optimizer) -> None:
    """Weights and Adam moments of the last epoch (safetensors) plus the counters (JSON)."""
    tensors = {f"model.{k}": v for k, v in _tensors(model).items()}
    opt = optimizer.state_dict()
    for index, values in opt["state"].items():
        for key, value in values.items():
            tensors[f"opt.{index}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
    save_file(tensors, str(folder / LAST))
    data = {**asdict(state), "param_groups": opt["param_groups"]}
    tmp = folder / (STATE_JSON + ".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(folder / STATE_JSON)


def _resume(folder: Path, cfg: TrainConfig, state: _State, model, optimizer,
            device: torch.device) -> bool:
    path = folder / STATE_JSON
    if not path.is_file() or not (folder / LAST).is_file():
        return False
    saved = json.loads(path.read_text())
    diff = {k: (saved["key"].get(k), v) for k, v in state.key.items()
            if saved["key"].get(k) != v}  # a key older runs lack reads as None
    if diff:
        raise MedbenchError(
            f"{folder} holds an unfinished run with other settings {diff}; resume it with "
            f"the same arguments, or choose another --name"
        )
    tensors = load_file(str(folder / LAST), device=str(device))
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    opt_state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, index, name = key.split(".", 2)
            opt_state.setdefault(int(index), {})[name] = value.cpu() if name == "step" else value
    optimizer.load_state_dict({"state": opt_state, "param_groups": saved["param_groups"]})
    for k in ("epoch", "best_epoch", "best_loss", "stale", "steps", "images_seen", "wall_s",
              "history"):
        setattr(state, k, saved[k])
    return True


def budget_block(device: torch.device, wall_s: float, steps: int,
                 images_seen: int) -> dict[str, Any]:
    """The ``budget`` block of a config.json: what the weights cost to train (every
    trained model's, the post-filter's included)."""
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return {
        "device": device.type,
        "device_name": device_name,
        "torch_threads": torch.get_num_threads(),
        "wall_s": round(wall_s, 2),  # seconds in training steps (device time)
        "steps": steps,
        "images_seen": images_seen,
    }


def schedule_lr(optimizer, base_lrs: list[float], budget: Budget, wall_s: float,
                steps: int) -> None:
    """Set each parameter group's learning rate where a budgeted run is (a cosine over the
    budget, :func:`~medbench.training.budget.lr_factor`); ``base_lrs`` per group."""
    factor = lr_factor(budget.progress(wall_s, steps))
    for group, base in zip(optimizer.param_groups, base_lrs):
        group["lr"] = base * factor


def already_trained(cfg: TrainConfig, read: Callable[[Path], Any], what: str,
                    echo: Callable[[str], Any]) -> TrainResult | None:
    """The finished model in ``cfg.folder`` (read by ``read``), checked to be the one
    ``cfg`` asks for (:func:`~medbench.training.finished.check_finished`); None when the
    folder holds none. ``what`` names it in the line echoed (``hyperprior model``)."""
    folder = cfg.folder
    if not (folder / CONFIG).is_file():
        return None
    ckpt = read(folder)
    check_finished(cfg, ckpt.config, folder)  # the same model, not another one
    echo(f"{what} {cfg.model_name} is already trained in {folder}; delete that folder or "
         f"choose another --name to train again")
    return TrainResult(ckpt, already_trained=True)


def _config_json(cfg: TrainConfig, state: _State, splits: dict[str, SplitImages],
                 device: torch.device, measured: dict[str, float], best: dict[str, Any],
                 command: str | None) -> dict[str, Any]:
    milestones = [h["milestone"] for h in state.history if h.get("milestone")]
    config = {
        "name": cfg.model_name,
        "objective": cfg.objective,
        "lmbda": cfg.lmbda,
        "medbench_version": __version__,
        "command": command,
        "train": {
            "dataset": cfg.dataset,
            "protocol": parse_protocol(cfg.protocol, cfg.size, cfg.bit_depth).name,
            "images": {"train": len(splits["train"]), "val": len(splits["val"])},
            "epochs": cfg.epochs,
            "epochs_run": state.epoch,
            "best_epoch": state.best_epoch if cfg.budget_rule() is None else state.epoch,
            "stopped_early": cfg.epochs is not None and state.epoch < cfg.epochs,
            "budget": cfg.budget,
            "max_steps": cfg.steps,
            "batch_size": cfg.batch_size,
            "lr": cfg.lr,
            "crop": cfg.crop,
            "repeat": cfg.repeat,
            "patience": cfg.patience,
            "seed": cfg.seed,
            "limit": cfg.limit,
        },
        "budget": budget_block(device, state.wall_s, state.steps, state.images_seen),
        "validation": {
            "bpp": measured["bpp"],  # from real bitstreams (header included)
            "psnr": measured["psnr"],
            "est_bpp": best["est_bpp"],
            "loss": best["loss"],
        },
        "history": state.history,
        "trained_on": trained_on(splits, parent_images(cfg)),
    }
    if milestones:
        config["milestones"] = milestones
    parent = parent_record(cfg)
    if parent is not None:
        config["parent"] = parent
    return config
