"""Budget-first training: how long a run trains, its learning-rate and crop schedule, and
the milestone ladder at which its checkpoints are kept.

A budget is device time (``--budget 90s``, ``20m``, ``1.5h``: seconds spent in training
steps on the training device; validation and checkpoint writing are not counted) or a
number of optimisation steps (``--steps N``). Under a budget the learning rate follows a
cosine from ``--lr`` down to :data:`FINAL_LR` of it at the end of the budget, and the
first :data:`SMALL_CROP_SHARE` of the budget trains on crops of half the side (four times
cheaper per step, so more steps while the weights are still far off; the large crops of
the rest teach the long-range structure).

Milestones: a budgeted run keeps a checkpoint each time its budget passes a rung of a
ladder that is the same for every run, so the λ models of one codec trained under the
same budget share milestone labels and form one RD curve per label:

- time: 1, 2, 4, 8, 15, 30 s, then 1, 2, 4, 8 … minutes (labels ``15s``, ``4m``);
- steps: powers of two (labels ``4096steps``).

Only rungs from 1/64 of the budget upwards are kept (at most seven milestones), and the
end of the budget is always one (labelled by the budget itself, e.g. ``20m``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from medbench.errors import MedbenchError

#: Learning rate at the end of a budget, as a share of ``--lr``.
FINAL_LR = 0.1
#: Share of a budget trained on half-side crops.
SMALL_CROP_SHARE = 0.5
#: Smallest half-crop side worth training on (smaller crops see too little context).
MIN_SMALL_CROP = 64
#: Rungs below ``budget / LADDER_SPAN`` are not kept.
LADDER_SPAN = 64
_SECOND_RUNGS = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}
_BUDGET = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([smh])\s*$", re.IGNORECASE)
_LABEL = re.compile(r"^(\d+(?:\.\d+)?)(s|m|h|steps)$")


def parse_budget(text: str) -> float:
    """Seconds of a ``--budget`` value: a number and a unit ``s``, ``m`` or ``h``.

    Raises
    ------
    MedbenchError
        For anything else (``20``, ``-1m``, ``0s``), naming the value and the format.
    """
    match = _BUDGET.match(str(text))
    seconds = float(match.group(1)) * _UNITS[match.group(2).lower()] if match else 0.0
    if not match or seconds <= 0:
        raise MedbenchError(
            f"--budget {text!r} is not a positive duration; write a number and a unit "
            f"s, m or h, e.g. --budget 90s, --budget 20m or --budget 1.5h"
        )
    return seconds


def time_label(seconds: float) -> str:
    """Short label of a duration: ``15s``, ``4m``, ``1.5h`` (``20m`` rather than ``1200s``)."""
    for unit, size in (("h", 3600.0), ("m", 60.0)):
        value = seconds / size
        if value >= 1 and abs(value * 4 - round(value * 4)) < 1e-9:  # quarter units
            return f"{value:g}{unit}"
    return f"{seconds:.3g}s" if seconds < 10 else f"{round(seconds):d}s"


def label_budget(label: str) -> tuple[float, str] | None:
    """(amount, unit) of a milestone label: seconds for ``4m``, steps for ``64steps``."""
    match = _LABEL.match(label)
    if not match:
        return None
    value, unit = float(match.group(1)), match.group(2)
    if unit == "steps":
        return value, "steps"
    return value * _UNITS[unit], "s"


def time_ladder(budget_s: float) -> list[float]:
    """Milestone times (seconds) of a time budget, ending with the budget itself."""
    rungs = list(_SECOND_RUNGS)
    minutes = 60.0
    while minutes < budget_s:
        rungs.append(minutes)
        minutes *= 2
    floor = budget_s / LADDER_SPAN
    return [r for r in rungs if floor <= r < budget_s] + [budget_s]


def step_ladder(steps: int) -> list[int]:
    """Milestone step counts of a step budget: powers of two, then ``steps`` itself."""
    floor = max(1.0, steps / LADDER_SPAN)
    rungs = [2 ** k for k in range(steps.bit_length()) if floor <= 2 ** k < steps]
    return rungs + [steps]


@dataclass(frozen=True)
class Budget:
    """The stopping rule of a budgeted run: device seconds or optimisation steps."""

    seconds: float | None = None
    steps: int | None = None

    def __post_init__(self) -> None:
        if (self.seconds is None) == (self.steps is None):
            raise MedbenchError("give one of --budget or --steps, not both")
        if self.steps is not None and self.steps < 1:
            raise MedbenchError(f"--steps must be >= 1, not {self.steps}")

    def used(self, wall_s: float, steps: int) -> float:
        """How much of the budget a run has spent (in the budget's unit)."""
        return wall_s if self.seconds is not None else float(steps)

    @property
    def total(self) -> float:
        return float(self.seconds if self.seconds is not None else self.steps)

    def progress(self, wall_s: float, steps: int) -> float:
        """Share of the budget spent, 0 to 1."""
        return min(1.0, self.used(wall_s, steps) / self.total)

    def done(self, wall_s: float, steps: int) -> bool:
        return self.used(wall_s, steps) >= self.total

    def milestones(self) -> list[tuple[float, str]]:
        """(amount, label) of every milestone, ending with the whole budget."""
        if self.seconds is not None:
            return [(t, time_label(t)) for t in time_ladder(self.seconds)]
        return [(float(n), f"{n}steps") for n in step_ladder(int(self.steps or 0))]


def lr_factor(progress: float) -> float:
    """Multiplier of ``--lr`` at ``progress`` (0..1) of a budget: cosine to FINAL_LR."""
    return FINAL_LR + (1 - FINAL_LR) * 0.5 * (1 + math.cos(math.pi * min(max(progress, 0), 1)))


def crop_at(progress: float, crop: int, stride: int) -> int:
    """Crop side at ``progress`` of a budget: half of ``crop`` early, when that is big enough."""
    half = crop // 2
    half -= half % stride
    if progress < SMALL_CROP_SHARE and half >= max(MIN_SMALL_CROP, stride):
        return half
    return crop
