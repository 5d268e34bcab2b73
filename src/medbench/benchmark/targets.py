"""Rate matching (``run --target``): per image and codec, the setting that hits a target.

A target is a compression ratio (``ratio=10``: 10:1 against the image's native bit
depth), a rate (``bpp=0.25``) or a quality (``psnr=40``). Its cells are named
``target:ratio=10`` and sit beside the codecs' own settings; :func:`match` finds, for one
image, the codec setting the cell is coded at.

The rule
--------
Rate targets (``ratio``, ``bpp``) land on the **largest rate not above the target**: the
achieved bytes never exceed the budget (achieved ratio >= target ratio). ``psnr`` targets
land on the **smallest rate whose PSNR is at least the target**. A match is *within
tolerance* when the achieved bpp is at most :data:`RATE_TOLERANCE` (2 %) below the target
bpp, or the PSNR at most :data:`PSNR_TOLERANCE` (0.1 dB) above the target; on an integer
knob (quality, JPEG-LS near) a point outside that tolerance is the best integer (the next
one towards more bytes breaks the rule), however far from the target it is. JPEG 2000's
rate control truncates at coding-pass boundaries, so on small images its achieved rate
moves in steps coarser than 2 %; ``target_note`` then gives where the search stopped.

The search
----------
Codecs with a :meth:`~medbench.codecs.base.Codec.knob` are searched over its whole lossy
range: both ends first (a target beyond the lowest rate is unreachable), then a bracket
that shrinks by interpolation of log(bpp) (or PSNR) against the knob (log scale for
continuous knobs), clamped to the bracket's inner 80 % so it always shrinks. It stops
within tolerance, when an integer bracket closes, or after :data:`MAX_ENCODES` encodes,
whichever comes first, and keeps the best point it saw. Codecs without a knob (learned
models, ``png``) try their settings (all of them when there are at most
:data:`MAX_ENCODES`) and take the nearest by the same rule, flagged when outside
tolerance. Search encodes are not timed; the harness times the chosen setting as usual.
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
    met: bool  # the achieved point obeys the rule (rate not above / PSNR not below)
    note: str | None  # why it is not within tolerance (unreachable, model choice...)
    encodes: int


@dataclass(frozen=True)
class _Point:
    u: float  # search coordinate, increasing with rate
    setting: str
    bpp: float
    ratio: float
    psnr: float | None


class _Search:
    """One search: evaluates points, remembers them, judges them against the target."""

    def __init__(self, codec: Codec, image: Image, target: Target):
        self.codec, self.image, self.target = codec, image, target
        self.points: dict[str, _Point] = {}
        self.encodes = 0
        budget = target.budget_bpp(image.bit_depth)
        self.budget = budget

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
                       compression_ratio(len(data), h, w, self.image.bit_depth), quality)
        self.points[setting] = point
        return point

    # -- judging ------------------------------------------------------------------------
    def feasible(self, p: _Point) -> bool:
        if self.budget is not None:
            return p.bpp <= self.budget
        return p.psnr is not None and p.psnr >= self.target.value

    def within(self, p: _Point) -> bool:
        if not self.feasible(p):
            return False
        if self.budget is not None:
            return p.bpp >= self.budget * (1 - RATE_TOLERANCE)
        return p.psnr is not None and p.psnr <= self.target.value + PSNR_TOLERANCE

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
        if self.budget is not None:
            return max(good, key=lambda p: p.bpp)
        return min(good, key=lambda p: p.bpp)

    def closest(self) -> _Point:
        if self.budget is not None:
            return min(self.points.values(), key=lambda p: p.bpp)
        return max(self.points.values(), key=lambda p: p.psnr or -math.inf)

    def achieved(self, p: _Point) -> str:
        if self.target.kind == "ratio":
            return f"{p.ratio:.1f}:1"
        if self.target.kind == "bpp":
            return f"{p.bpp:.3f} bpp"
        return f"{p.psnr:.2f} dB"


def match(codec: Codec, image: Image, target: Target) -> Match:
    """The setting of ``codec`` that meets ``target`` on ``image`` by the module's rule.

    Codec errors propagate (the harness turns them into an error row); a target the codec
    cannot reach is a :class:`Match` with ``met=False`` and a note naming the closest rate.
    """
    search = _Search(codec, image, target)
    knob = codec.knob(image.bit_depth)
    if knob is None:
        _search_settings(search, [s for s in codec.settings()])
    else:
        _search_knob(search, knob)
    best = search.best()
    if best is None:
        near = search.closest()
        return Match(near.setting, False,
                     f"{codec.name} cannot reach {target.describe()} on this image: closest "
                     f"{search.achieved(near)} at {near.setting}", search.encodes)
    note = None
    top = max(search.points.values(), key=lambda p: (p.bpp, p.u))  # the richest setting
    if not search.within(best) and search.budget is not None and best.bpp >= top.bpp:
        # Its richest setting still spends less than the target allows (a smooth image,
        # a lossy codestream that is complete): as close as this codec gets, not a search
        # that gave up.
        note = (f"{codec.name} cannot spend the bytes of {target.describe()} on this image: "
                f"its highest rate is {search.achieved(top)} at {top.setting}")
    elif not search.within(best):
        if knob is None:
            note = (f"{codec.name} has no rate knob: nearest setting {best.setting} at "
                    f"{search.achieved(best)} for {target.describe()}")
        elif not knob.integer:
            note = (f"closest within {search.encodes} encodes: {search.achieved(best)} at "
                    f"{best.setting} for {target.describe()}")
    return Match(best.setting, True, note, search.encodes)


def _search_settings(search: _Search, settings: list[str]) -> None:
    """Codecs without a knob: every setting, or a bracket over their rate order."""
    if len(settings) <= MAX_ENCODES:
        for index, setting in enumerate(settings):
            search.at(index, setting)
        return
    _bracket(search, 0, len(settings) - 1, True, lambda u: settings[int(u)])


def _search_knob(search: _Search, knob: Knob) -> None:
    """Both ends of the knob's range, then a shrinking bracket (see the module notes)."""
    sign = -1.0 if knob.larger_is_smaller else 1.0

    def value(u: float) -> float:
        return math.exp(sign * u) if knob.log else sign * u

    def setting(u: float) -> str:
        return knob.setting_for(value(u))

    ends = [sign * (math.log(v) if knob.log else v) for v in (knob.low, knob.high)]
    _bracket(search, min(ends), max(ends), knob.integer, setting)


def _bracket(search: _Search, low: float, high: float, integer: bool, setting) -> None:
    """Shrink ``[low, high]`` (search coordinates, rate increasing) around the target."""
    a = search.at(low, setting(low))
    if low == high or not _low_side(search, a):
        return  # a rate target below the lowest rate, or a PSNR met there already
    b = search.at(high, setting(high))
    if _low_side(search, b):
        return  # the highest rate is still on the low side: it is the best there is
    while search.encodes < MAX_ENCODES:
        best = search.best()
        if best is not None and search.within(best):
            return
        if integer and b.u - a.u <= 1:
            return  # adjacent integers: the best integer is known
        span = b.u - a.u
        la, lb = search.level(a), search.level(b)
        t = 0.5 if lb == la else (search.goal() - la) / (lb - la)
        u = a.u + min(max(t, 0.1), 0.9) * span
        if integer:
            u = float(min(max(round(u), a.u + 1), b.u - 1))
        p = search.at(u, setting(u))
        if p.u in (a.u, b.u) or p.setting in (a.setting, b.setting):
            return  # the setting string cannot resolve the bracket further
        if _low_side(search, p):
            a = p
        else:
            b = p


def _low_side(search: _Search, p: _Point) -> bool:
    """Whether ``p`` lies below the crossing (rate targets: feasible; PSNR: not yet)."""
    return search.feasible(p) if search.budget is not None else not search.feasible(p)


__all__ = ["KINDS", "MAX_ENCODES", "PSNR_TOLERANCE", "RATE_TOLERANCE", "Match", "Target",
           "match", "parse_target_setting", "parse_targets"]
