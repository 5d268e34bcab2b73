"""A finished model found where ``medbench train`` would write one: the same model, or not.

Re-running a finished training command returns the model it made, trained nothing again.
A command that asks for another model under the same folder (``--steps 8`` where the
finished one ran 4, another ``--lr``, ``--dataset`` or ``--init``) must not be answered
with the old model as if it were the new one: :func:`check_finished` refuses it, naming
what differs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medbench.datasets.protocols import parse_protocol
from medbench.errors import MedbenchError
from medbench.training.config import FLAGS, TrainConfig

#: TrainConfig field → where a finished model's config.json records it.
RECORDED = {"arch": ("arch",), "latent": ("latent",), "width": ("width",),
            "objective": ("objective",), "lmbda": ("lmbda",), "ratio": ("ratio",),
            "dataset": ("train", "dataset"), "epochs": ("train", "epochs"),
            "budget": ("train", "budget"), "steps": ("train", "max_steps"),
            "batch_size": ("train", "batch_size"), "lr": ("train", "lr"),
            "crop": ("train", "crop"), "repeat": ("train", "repeat"),
            "patience": ("train", "patience"), "seed": ("train", "seed"),
            "limit": ("train", "limit")}
_MISSING = object()


def check_finished(cfg: TrainConfig, config: dict[str, Any], folder: Path) -> None:
    """Raise unless the finished model whose config.json is ``config`` is the one ``cfg``
    asks for (every option it records, its protocol and its parent model agree).

    Raises
    ------
    MedbenchError
        Naming the folder, each option as the model was trained and as now asked.
    """
    wanted = {name: getattr(cfg, name) for name in RECORDED}
    if cfg.arch == "jpeg2000+pf":  # a filter records no architecture of its own
        wanted.pop("arch")
    for name in ("latent", "width"):  # None: the architecture's default, recorded as such
        if wanted[name] is None:
            wanted.pop(name)
    differ = []
    for name, value in wanted.items():
        recorded = _lookup(config, RECORDED[name])
        if recorded is not _MISSING and not _same(recorded, value):
            differ.append((FLAGS.get(name, f"--{name.replace('_', '-')}"), recorded, value))
    train = config.get("train") if isinstance(config.get("train"), dict) else {}
    protocol = parse_protocol(cfg.protocol, cfg.size, cfg.bit_depth).name
    if train.get("protocol") not in (None, protocol):
        differ.append(("--protocol/--size/--bit-depth", train.get("protocol"), protocol))
    parent = config.get("parent") if isinstance(config.get("parent"), dict) else {}
    now = str(Path(cfg.init).resolve()) if cfg.init else None
    if parent.get("path") != now:
        differ.append(("--init", parent.get("path"), now))
    if differ:
        text = "; ".join(f"{flag} {_text(old)}, not {_text(new)}" for flag, old, new in differ)
        raise MedbenchError(
            f"{folder} holds a finished model trained with other settings ({text}); "
            "delete that folder to train it again, or choose another --name for the new one")


def _lookup(config: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = config
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return _MISSING
        value = value[key]
    return value


def _same(recorded: Any, value: Any) -> bool:
    if isinstance(recorded, (int, float)) and isinstance(value, (int, float)) \
            and not isinstance(recorded, bool) and not isinstance(value, bool):
        return float(recorded) == float(value)
    return recorded == value


def _text(value: Any) -> str:
    return "(none)" if value is None else f"{value:g}" if isinstance(value, float) else str(value)
