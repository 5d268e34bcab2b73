"""Rate matching (``run --target``): per image and codec, the setting that hits a target.

A target is a compression ratio (``ratio=10``: 10:1 against the image's native bit
depth), a rate (``bpp=0.25``) or a quality (``psnr=40``). Its cells are named
``target:ratio=10`` and sit beside the codecs' own settings; :func:`match` finds, for one
image, the codec setting the cell is coded at.

The rule
--------
Rate targets (``ratio``, ``bpp``) land on the **largest rate not above the target**: the
achieved bytes never exceed the budget (achieved ratio >= target ratio). ``psnr`` targets
land on the **smallest rate whose PSNR is at least the target**. The tolerance:

- continuous knobs (JPEG 2000 ratio, JPEG XL distance, HTJ2K qstep): the achieved bpp at
  most :data:`RATE_TOLERANCE` (2 %) below the target bpp (10:1 lands on 10.0–10.2:1), or
  the PSNR at most :data:`PSNR_TOLERANCE` (0.1 dB) above the target;
- integer knobs (AVIF/JPEG/WebP quality, JPEG-LS ``near``): the same, or else the **best
  integer**: the value whose next step towards more bytes breaks the rule. No setting
  of such a codec lies closer, so this is its tolerance; the note says how far it lies
  (one quality step is often 5–10 % of the rate at 256²).

A row's ``target_met`` is true only when its point **obeys the rule and lies within that
tolerance**; a best-integer row is met and keeps its note. Otherwise ``target_met`` is
false and ``target_note`` says which of these it is:

- *cannot reach*: even the codec's lowest rate (or richest setting, for PSNR) breaks the
  rule; the row is coded at the closest point, which is above the target rate;
- *cannot spend the bytes*: the codec's richest setting still spends less than the
  target allows (a smooth image, a complete codestream): as close as the codec gets;
- *rate jumps*: on a continuous knob the rate jumps across the tolerance window between
  two settings the search narrowed down (libjxl at distance 0.5, OpenJPEG's coding-pass
  steps even at the finest code-blocks);
- *closest within N encodes*: the search ran out of encodes first;
- *no rate knob*: a codec with fixed settings (learned models, ``png``) took its nearest.

Every such row still obeys the rule except *cannot reach*; the report marks rows that
missed the tolerance on any image.

The search judges its own encodes; the row's stream is the one encoded again, timed,
measured and stored. So :func:`recheck` judges the row once more on its own bytes, rate
and PSNR: a met target stays met only when that stream is the one the search judged
(same bytes) and still obeys the rule within the tolerance; otherwise ``target_met`` is
false and the note says the measured stream is not the point the search judged.

The search
----------
Codecs with a :meth:`~medbench.codecs.base.Codec.knob` are searched over its whole lossy
range: both ends first (a target beyond the lowest rate is unreachable), then a bracket
that shrinks by interpolation of log(bpp) (or PSNR) against the knob (log scale for
continuous knobs), clamped to the bracket's inner 80 % and bisected when one side keeps
moving (a step-shaped rate curve), so it always shrinks. It stops within tolerance, when an
integer bracket closes or the setting text cannot resolve it further, or after
:data:`MAX_ENCODES` encodes, and keeps the best point it saw. A codec may also offer
``finer_knobs(bit_depth)``: the same knob with finer rate steps (JPEG 2000 at 32×32, then
16×16 code-blocks), each searched, with its own :data:`MAX_ENCODES`, only while the
points so far straddle the target without one inside the tolerance; so a search spends at
most ``MAX_ENCODES × (1 + len(finer_knobs))`` encodes. Codecs without a knob (learned
models, ``png``) try their settings (all of them when there are at most
:data:`MAX_ENCODES`) and take the nearest by the same rule. Search encodes are not timed;
the harness times the chosen setting as usual.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from medbench.benchmark.metrics import bits_per_pixel, compression_ratio, psnr
from medbench.codecs.base import Codec, Knob
from medbench.errors import MedbenchError
from medbench.image import Image

PREFIX = "target:"
KINDS = ("ratio", "bpp", "psnr")
#: Rate targets: the achieved bpp may lie this fraction below the target (never above).
RATE_TOLERANCE = 0.02
#: PSNR targets: the achieved PSNR may lie this many dB above the target (never below).
PSNR_TOLERANCE = 0.1
#: Encodes one search may spend (per image, codec and target).
MAX_ENCODES = 12


@dataclass(frozen=True)
class Target:
    """One rate-matching target: ``kind`` (ratio, bpp or psnr) and its value."""

    kind: str
    value: float

    @property
    def setting(self) -> str:
        """The cell's setting name, ``target:ratio=10``."""
        return f"{PREFIX}{self.kind}={self.value:g}"

    def describe(self) -> str:
        return {"ratio": f"{self.value:g}:1", "bpp": f"{self.value:g} bpp",
                "psnr": f"{self.value:g} dB PSNR"}[self.kind]

    def budget_bpp(self, bit_depth: int) -> float | None:
        """The largest bpp the rule allows, or None for a PSNR target."""
        if self.kind == "ratio":
            return bit_depth / self.value
        return self.value if self.kind == "bpp" else None


def parse_targets(text: str) -> list[Target]:
    """Targets from ``--target`` text: ``ratio=10,30``, ``bpp=0.25,0.5``, ``psnr=40``.

    A bare number takes the kind before it (``ratio=10,30`` is two ratio targets).

    Raises
    ------
    MedbenchError
        For an unknown kind, a value that is not a positive number, or a bare first value.
    """
    targets: list[Target] = []
    kind = None
    for item in (part.strip() for part in text.split(",")):
        key, sep, value = item.partition("=")
        if sep:
            kind = key.strip()
        else:
            value = key
        if kind not in KINDS:
            raise MedbenchError(f"--target {text!r}: {item!r} names no target kind; write "
                                f"ratio=10,30 or bpp=0.25 or psnr=40")
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not (math.isfinite(number) and number > 0) or (kind == "ratio" and number < 1):
            raise MedbenchError(f"--target {text!r}: {item!r} is not a positive number"
                                f"{' >= 1' if kind == 'ratio' else ''}; write e.g. ratio=10,30")
        targets.append(Target(kind, number))
    return list(dict.fromkeys(targets))


def parse_target_setting(setting: str) -> Target | None:
    """The target of a ``target:…`` cell, or None for a codec's own setting."""
    if not setting.startswith(PREFIX):
        return None
    targets = parse_targets(setting[len(PREFIX):])
    if len(targets) != 1:
        raise MedbenchError(f"{setting!r} is not one target; write target:ratio=10")
    return targets[0]


@dataclass(frozen=True)
class Match:
    """The setting a target cell is coded at, and how well it meets the target."""

    setting: str
    met: bool  # obeys the rule AND lies within the tolerance (see the module notes)
    note: str | None  # why not, when ``met`` is false (cannot reach...); or a best integer
    encodes: int
    #: Bytes of the search's encode at ``setting`` (the stream it judged).
    nbytes: int | None = None


@dataclass(frozen=True)
class _Point:
    u: float  # search coordinate, increasing with rate
    setting: str
    bpp: float
    ratio: float
    psnr: float | None
    nbytes: int = 0


def obeys_rule(target: Target, bit_depth: int, bpp: float, psnr: float | None) -> bool:
    """Whether a coded point obeys the target's rule: a rate not above the target's, or a
    PSNR not below it (module notes)."""
    budget = target.budget_bpp(bit_depth)
    if budget is not None:
        return bpp <= budget
    return psnr is not None and psnr >= target.value


def within_tolerance(target: Target, bit_depth: int, bpp: float,
                     psnr: float | None) -> bool:
    """Whether a coded point obeys the rule and lies within :data:`RATE_TOLERANCE` below
    the target rate (or :data:`PSNR_TOLERANCE` above the target PSNR)."""
    if not obeys_rule(target, bit_depth, bpp, psnr):
        return False
    budget = target.budget_bpp(bit_depth)
    if budget is not None:
        return bpp >= budget * (1 - RATE_TOLERANCE)
    return psnr is not None and psnr <= target.value + PSNR_TOLERANCE


def achieved(target: Target, bpp: float, ratio: float, psnr: float | None) -> str:
    """A coded point in the target's unit: ``10.07:1``, ``0.2500 bpp``, ``40.03 dB``."""
    if target.kind == "ratio":
        return f"{ratio:.2f}:1"
    if target.kind == "bpp":
        return f"{bpp:.4f} bpp"
    return f"{psnr:.2f} dB"


def recheck(found: Match, target: Target, bit_depth: int, nbytes: int, bpp: float,
            ratio: float, psnr: float | None) -> tuple[bool, str | None]:
    """``target_met`` and ``target_note`` of a row, judged on the row's own stream.

    Parameters
    ----------
    found
        What the search decided, on its own encode.
    target, bit_depth
        The row's target and the coded image's bit depth.
    nbytes, bpp, ratio, psnr
        The row's measured stream: its length, rate and PSNR.

    Returns
    -------
    tuple of (bool, str or None)
        The search's verdict when it judged these very bytes and they still obey the rule
        (within the tolerance, unless the search found the best integer); else false, with
        a note naming what the measured stream did.
    """
    if not found.met:
        return False, found.note
    if nbytes != found.nbytes:
        why = (f"its stream has {nbytes} bytes, the search's encode at {found.setting} "
               f"had {found.nbytes}")
    elif not obeys_rule(target, bit_depth, bpp, psnr):
        why = f"the measured point breaks the rule of {target.describe()}"
    elif found.note is None and not within_tolerance(target, bit_depth, bpp, psnr):
        why = f"the measured point lies outside the tolerance of {target.describe()}"
    else:
        return True, found.note
    return False, (f"not met as measured ({achieved(target, bpp, ratio, psnr)}): {why}; "
                   f"the search judged another stream")


#: A continuous bracket narrower than this (search coordinate: log of the knob) that
#: still straddles the tolerance window is a jump of the rate, not an unfinished search.
JUMP_WIDTH = 0.01


class _Search:
    """One search: evaluates points, remembers them, judges them against the target."""

    def __init__(self, codec: Codec, image: Image, target: Target):
        self.codec, self.image, self.target = codec, image, target
        self.points: dict[str, _Point] = {}
        self.encodes = 0
        self.budget = target.budget_bpp(image.bit_depth)
        self.last_bracket: tuple[_Point, _Point] | None = None  # of the last knob searched

    def at(self, u: float, setting: str) -> _Point:
        if setting in self.points:
            return self.points[setting]
        data = self.codec.encode(self.image, setting)
        self.encodes += 1
        h, w = self.image.pixels.shape
        quality = None
        if self.target.kind == "psnr":
            decoded = self.codec.decode(bytes(data))
            quality = psnr(self.image.pixels, decoded,
                           data_range=float((1 << self.image.bit_depth) - 1))
        point = _Point(u, setting, bits_per_pixel(len(data), h, w),
                       compression_ratio(len(data), h, w, self.image.bit_depth), quality,
                       len(data))
        self.points[setting] = point
        return point

    # -- judging ------------------------------------------------------------------------
    def feasible(self, p: _Point) -> bool:
        return obeys_rule(self.target, self.image.bit_depth, p.bpp, p.psnr)

    def within(self, p: _Point) -> bool:
        return within_tolerance(self.target, self.image.bit_depth, p.bpp, p.psnr)

    def level(self, p: _Point) -> float:
        """The quantity bisected, increasing with rate (log bpp, or PSNR capped)."""
        if self.budget is not None:
            return math.log(max(p.bpp, 1e-12))
        return min(p.psnr if p.psnr is not None else 0.0, 999.0)

    def goal(self) -> float:
        if self.budget is not None:
            return math.log(self.budget * (1 - RATE_TOLERANCE / 2))
        return self.target.value + PSNR_TOLERANCE / 2

    def best(self) -> _Point | None:
        good = [p for p in self.points.values() if self.feasible(p)]
        if not good:
            return None
        if self.budget is not None:  # equal bytes: the setting nearer the crossing
            return max(good, key=lambda p: (p.bpp, p.u))
        return min(good, key=lambda p: (p.bpp, -p.u))

    def above(self) -> _Point | None:
        """The point nearest the target on the side that breaks the rule, if any."""
        bad = [p for p in self.points.values() if not self.feasible(p)]
        if not bad:
            return None
        if self.budget is not None:
            return min(bad, key=lambda p: p.bpp)
        return max(bad, key=lambda p: p.psnr or -math.inf)

    def closest(self) -> _Point:
        if self.budget is not None:
            return min(self.points.values(), key=lambda p: p.bpp)
        return max(self.points.values(), key=lambda p: p.psnr or -math.inf)

    def achieved(self, p: _Point) -> str:
        return achieved(self.target, p.bpp, p.ratio, p.psnr)

    def miss(self, p: _Point) -> str:
        """How far a rule-obeying point lies from the target, in the tolerance's unit."""
        if self.budget is not None:
            return (f"{100 * (1 - p.bpp / self.budget):.1f} % below the target rate "
                    f"(tolerance {100 * RATE_TOLERANCE:g} %)")
        return (f"{p.psnr - self.target.value:.2f} dB above the target PSNR "
                f"(tolerance {PSNR_TOLERANCE:g} dB)")


def match(codec: Codec, image: Image, target: Target) -> Match:
    """The setting of ``codec`` that meets ``target`` on ``image`` by the module's rule.

    Codec errors propagate (the harness turns them into an error row). ``met`` is true
    only for a point that obeys the rule within the tolerance; otherwise the
    :class:`Match` is the best point there is and its note says why (module notes).
    """
    search = _Search(codec, image, target)
    knob = codec.knob(image.bit_depth)
    if knob is None:  # finished models only, never a milestone (Codec.target_settings)
        _search_settings(search, list(codec.target_settings()))
    else:
        _search_knob(search, knob)
        finer = getattr(codec, "finer_knobs", None)
        for other in (finer(image.bit_depth) if finer is not None else []):
            best, above = search.best(), search.above()
            if best is None or above is None or search.within(best):
                break  # within already, or nothing finer can help (unreachable / richest)
            _search_knob(search, other, near=(best.u, above.u))
    best = search.best()
    if best is None:
        near = search.closest()
        return Match(near.setting, False,
                     f"{codec.name} cannot reach {target.describe()} on this image: closest "
                     f"{search.achieved(near)} at {near.setting}", search.encodes, near.nbytes)
    if search.within(best):
        return Match(best.setting, True, None, search.encodes, best.nbytes)
    note, met = _why_not(search, knob, best)
    return Match(best.setting, met, note, search.encodes, best.nbytes)


def _why_not(search: _Search, knob: Knob | None, best: _Point) -> tuple[str, bool]:
    """The note of a rule-obeying point outside the 2 % window (module notes, in order),
    and whether it is met all the same (the best integer of an integer knob)."""
    name, goal = search.codec.name, search.target.describe()
    at = f"{search.achieved(best)} at {best.setting}, {search.miss(best)}"
    above = search.above()
    if above is None and search.budget is not None:
        top = max(search.points.values(), key=lambda p: (p.bpp, p.u))  # the richest setting
        return (f"{name} cannot spend the bytes of {goal} on this image: its highest rate "
                f"is {search.achieved(top)} at {top.setting}, {search.miss(best)}"), False
    if knob is None:
        return f"{name} has no rate knob: nearest setting {at}", False
    if above is None:  # a PSNR target exceeded already at the knob's lowest rate
        return f"{name}'s lowest rate already exceeds {goal}: {at}", False
    beyond = f"{above.setting} gives {search.achieved(above)}, beyond {goal}"
    if knob.integer and search.last_bracket is not None:
        a, b = search.last_bracket
        if abs(b.u - a.u) <= 1:
            return f"best integer {at}; {beyond}", True
    if search.last_bracket is not None:
        a, b = search.last_bracket
        if abs(b.u - a.u) <= JUMP_WIDTH or a.setting == b.setting:
            return f"{name}'s rate jumps across the tolerance: {at}; {beyond}", False
    return f"closest within {search.encodes} encodes: {at}; {beyond}", False


def _search_settings(search: _Search, settings: list[str]) -> None:
    """Codecs without a knob: every setting, or a bracket over their rate order."""
    if len(settings) <= MAX_ENCODES:
        for index, setting in enumerate(settings):
            search.at(index, setting)
        return
    _bracket(search, 0, len(settings) - 1, True, lambda u: settings[int(u)])


def _search_knob(search: _Search, knob: Knob,
                 near: tuple[float, float] | None = None) -> None:
    """Both ends of the knob's range, then a shrinking bracket (see the module notes).

    ``near``: search coordinates of a bracket another knob of the same scale found
    (a finer knob's search starts there, widened a little, when it straddles the target).
    """
    sign = -1.0 if knob.larger_is_smaller else 1.0

    def value(u: float) -> float:
        return math.exp(sign * u) if knob.log else sign * u

    def setting(u: float) -> str:
        return knob.setting_for(value(u))

    ends = [sign * (math.log(v) if knob.log else v) for v in (knob.low, knob.high)]
    low, high = min(ends), max(ends)
    limit = search.encodes + MAX_ENCODES  # the hint's probes count against it too
    if near is not None:
        pad = 0.05 * (high - low) if not knob.log else 0.02
        a, b = max(low, min(near) - pad), min(high, max(near) + pad)
        if a < b and _low_side(search, search.at(a, setting(a))) \
                and not _low_side(search, search.at(b, setting(b))):
            low, high = a, b  # it straddles the target: shrink it; else the whole range
    _bracket(search, low, high, knob.integer, setting, limit)


def _bracket(search: _Search, low: float, high: float, integer: bool, setting,
             limit: int | None = None) -> None:
    """Shrink ``[low, high]`` (search coordinates, rate increasing) around the target.

    Spends at most :data:`MAX_ENCODES` encodes from now (or until ``limit``).
    """
    limit = search.encodes + MAX_ENCODES if limit is None else limit
    a = search.at(low, setting(low))
    if low == high or not _low_side(search, a):
        return  # a rate target below the lowest rate, or a PSNR met there already
    b = search.at(high, setting(high))
    if _low_side(search, b):
        return  # the highest rate is still on the low side: it is the best there is
    search.last_bracket = (a, b)
    moved = ""  # which end moved last, twice in a row means a step: bisect
    repeat = False
    while search.encodes < limit:
        best = search.best()
        if best is not None and search.within(best):
            return
        if integer and b.u - a.u <= 1:
            return  # adjacent integers: the best integer is known
        span = b.u - a.u
        la, lb = search.level(a), search.level(b)
        t = 0.5 if lb == la or repeat else (search.goal() - la) / (lb - la)
        u = a.u + min(max(t, 0.1), 0.9) * span
        if integer:
            u = float(min(max(round(u), a.u + 1), b.u - 1))
        p = search.at(u, setting(u))
        if p.u in (a.u, b.u) or p.setting in (a.setting, b.setting):
            return  # the setting string cannot resolve the bracket further
        side = "a" if _low_side(search, p) else "b"
        repeat = side == moved
        moved = side
        if side == "a":
            a = p
        else:
            b = p
        search.last_bracket = (a, b)


def _low_side(search: _Search, p: _Point) -> bool:
    """Whether ``p`` lies below the crossing (rate targets: feasible; PSNR: not yet)."""
    return search.feasible(p) if search.budget is not None else not search.feasible(p)


__all__ = ["KINDS", "MAX_ENCODES", "PSNR_TOLERANCE", "RATE_TOLERANCE", "Match", "Target",
           "achieved", "match", "obeys_rule", "parse_target_setting", "parse_targets",
           "recheck", "within_tolerance"]
