"""A tool's settings, typed: one table of defaults, validation with clear messages, one writer.

Stored as JSON in ``tool.settings`` (the shape of :meth:`ToolSettings.to_json`). Decision thresholds
and review bands are per model method and optional: a method without one decides with the calibrated
threshold and band of its active version. Every change goes through :func:`change_settings`, which
validates, saves and writes the audit log in one transaction.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any

from core.audit import Actor, log
from core.auth.guard import require
from core.auth.roles import Permission
from core.auth.signatures import Meaning, sign_if_required
from core.errors import InvalidInputError
from core.operating_point.point import OperatingPoint
from core.studio import Studio
from core.tools import require_tool
from models.augment_names import check_tta
from models.registry import method_names
from models.tiling_plan import MAX_TILES, TilingCost, auto_tile, estimate_cost, tile_cost, tile_grid

CROSS_CHECK = "cross-check"
ONLY = " only"
TRIGGERS = ("continuous", "part-present", "manual")
MAX_SMOOTHING = 30
SHIFT_PATTERN = re.compile(r"^\s*([A-Za-z][\w-]{0,30})\s+(\d{1,2})\s*-\s*(\d{1,2})\s*$")


def policies() -> tuple[str, ...]:
    """``cross-check`` (every active model decides) or ``<method> only``."""
    return (CROSS_CHECK, *(f"{name}{ONLY}" for name in method_names()))


def policy_methods(policy: str) -> frozenset[str] | None:
    """The methods a policy wants to decide (None: every active one)."""
    return None if policy == CROSS_CHECK else frozenset({policy.removesuffix(ONLY)})


@dataclass(frozen=True)
class Shift:
    """A named span of the (UTC) day: ``start`` inclusive to ``end`` exclusive, in hours; wraps midnight
    when ``end <= start`` (22 - 6)."""

    name: str
    start: int
    end: int

    def __str__(self) -> str:
        return f"{self.name} {self.start:02d}-{self.end:02d}"


DEFAULT_SHIFTS = (Shift("early", 6, 14), Shift("late", 14, 22), Shift("night", 22, 6))


def parse_shifts(text: str) -> list[Shift]:
    """Shifts from ``"early 6-14, late 14-22, night 22-6"``: unique names, hours 0-23, start != end."""
    shifts: list[Shift] = []
    for part in (p for p in text.split(",") if p.strip()):
        match = SHIFT_PATTERN.match(part)
        if not match:
            raise InvalidInputError(f"shift {part.strip()!r} must look like 'early 6-14'")
        name, start, end = match.group(1), int(match.group(2)), int(match.group(3))
        if not (0 <= start <= 23 and 0 <= end <= 24) or start == end:
            raise InvalidInputError(f"shift {name!r}: hours must be 0-23 and the start differ from the end")
        if any(s.name == name for s in shifts):
            raise InvalidInputError(f"shift {name!r} is given twice")
        shifts.append(Shift(name, start, end % 24))
    if not shifts:
        raise InvalidInputError("give at least one shift, e.g. 'day 6-18, night 18-6'")
    return shifts


@dataclass(frozen=True)
class LiveOptions:
    """How the Live page runs: moving average over ``smoothing`` frames, mirror test-time augmentation,
    the heatmap overlay and its opacity, and when an inspection is recorded (``trigger``)."""

    smoothing: int = 5
    tta: bool = False
    heatmap: bool = True
    heatmap_opacity: float = 0.45
    trigger: str = "continuous"

    def validated(self) -> LiveOptions:
        if isinstance(self.smoothing, bool) or not 1 <= int(self.smoothing) <= MAX_SMOOTHING:
            raise InvalidInputError(f"smoothing is 1 to {MAX_SMOOTHING} frames")
        if not 0.0 <= float(self.heatmap_opacity) <= 1.0:
            raise InvalidInputError("the heatmap opacity is between 0 and 1")
        if self.trigger not in TRIGGERS:
            raise InvalidInputError(f"trigger must be one of {', '.join(TRIGGERS)}")
        return replace(self, smoothing=int(self.smoothing), tta=bool(self.tta), heatmap=bool(self.heatmap),
                       heatmap_opacity=float(self.heatmap_opacity))


TILING_MODES = ("off", "auto", "fixed", "cells")


@dataclass(frozen=True)
class TilingOptions:
    """Tiling for small defects on large parts (``models.tiling``): ``mode`` ``off``, ``auto`` (tile and
    overlap from the ROI's size and ``defect_px``, the size of the smallest defect to find, in ROI pixels)
    or ``fixed`` (``tile_px`` squares overlapping by ``overlap`` px), or ``cells`` (the cells between the
    part's dark grid lines, e.g. a solar module's; ``fixed`` when none are found). Applies to models
    trained after it is set (``models.tiling``)."""

    mode: str = "off"
    tile_px: int = 512
    overlap: int = 64
    defect_px: int = 64

    def validated(self) -> TilingOptions:
        if self.mode not in TILING_MODES:
            raise InvalidInputError(f"tiling.mode must be one of {', '.join(TILING_MODES)}")
        try:
            tile, overlap, defect = int(self.tile_px), int(self.overlap), int(self.defect_px)
        except (TypeError, ValueError):
            raise InvalidInputError("tiling.tile_px, tiling.overlap and tiling.defect_px are whole pixels") from None
        if not 64 <= tile <= 4096:
            raise InvalidInputError("tiling.tile_px is 64 to 4096 pixels")
        if not 0 <= overlap <= tile // 2:
            raise InvalidInputError("tiling.overlap is 0 to half of tiling.tile_px")
        if not 4 <= defect <= 4096:
            raise InvalidInputError("tiling.defect_px is 4 to 4096 pixels")
        return replace(self, tile_px=tile, overlap=overlap, defect_px=defect)

    def grid(self, height: int, width: int, native_px: int) -> tuple[int, int] | None:
        """Tile px and overlap for a ``height`` x ``width`` ROI (None: tiling off); InvalidInputError when
        a fixed tile would cut more than ``MAX_TILES`` tiles."""
        if self.mode == "off":
            return None
        if self.mode == "auto":
            return auto_tile(height, width, self.defect_px, native_px)
        tiles = len(tile_grid(height, width, self.tile_px, self.overlap))
        if tiles > MAX_TILES:
            raise InvalidInputError(f"{self.tile_px} px tiles cut a {width} x {height} ROI into {tiles} tiles, more "
                                    f"than {MAX_TILES}: use larger tiles or mode auto")
        return self.tile_px, self.overlap

    def cost(self, height: int, width: int, native_px: int, method: str) -> TilingCost | None:
        """What one tiled model of ``method`` costs on this ROI before training (None: tiling off)."""
        grid = self.grid(height, width, native_px)
        if grid is None:
            return None
        mb, ms = tile_cost(method)
        return estimate_cost(height, width, *grid, mb_per_tile=mb, ms_per_tile=ms)


@dataclass(frozen=True)
class RobustnessOptions:
    """Verdicts that hold when the light, the position or the motion changes (``models.augment``).

    ``augment``: models trained from now on also learn from changed copies of the training images
    (``models.registry.AUGMENTED``): both from the fixed variants ``models.augment.LINE_VARIANTS``
    (brighter light, shifted and turned, motion-blurred), the classifier of every image, the anomaly
    model of each good in its memory. ``tta``: the test-time
    variants every inspection of the tool averages over, on every path (``mirror``, ``shift``,
    ``light``; each costs one or two more network passes per part). ``position``: models trained from
    now on keep the mean image of their goods, and every inspection first finds the part against it and
    cuts the region of interest again where the part lies (``models.registration``: a shift and turn,
    found in a few ms; the crop as it was when none is found). bench/robustness.py measured what each buys
    (bench/RESULTS.md).
    """

    augment: bool = False
    tta: tuple[str, ...] = ()
    position: bool = False

    def validated(self) -> RobustnessOptions:
        names = self.tta.split(",") if isinstance(self.tta, str) else list(self.tta or ())
        try:
            tta = check_tta([n.strip() for n in names if n.strip() and n.strip() != "none"])
        except ValueError as error:
            raise InvalidInputError(f"robustness.tta: {error}") from None
        return replace(self, augment=bool(self.augment), tta=tta, position=bool(self.position))


def _fraction(name: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name} must be a number between 0 and 1, not {value!r}") from None
    if not 0.0 <= number <= 1.0:
        raise InvalidInputError(f"{name} must be between 0 and 1, not {value!r}")
    return number


def _frame(value: Any) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in value)
    except (TypeError, ValueError):
        raise InvalidInputError(f"roi_frame is a width and a height in pixels, not {value!r}") from None
    if width < 16 or height < 16:
        raise InvalidInputError("roi_frame must be at least 16 x 16 pixels")
    return width, height


def _operating_point(value: Any) -> OperatingPoint | None:
    """None, or a valid operating point (from its JSON too)."""
    if value is None or isinstance(value, OperatingPoint):
        try:
            return None if value is None else value.validated()
        except ValueError as error:
            raise InvalidInputError(f"operating_point: {error}") from None
    if not isinstance(value, dict):
        raise InvalidInputError("operating_point must be an operating point, its JSON or None")
    try:
        return OperatingPoint.from_json(value)
    except ValueError as error:
        raise InvalidInputError(f"operating_point: {error}") from None


def _per_method(name: str, values: Any, upper: float) -> MappingProxyType:
    if not isinstance(values, dict):
        raise InvalidInputError(f"{name} must map a model method to a number")
    known = method_names()
    clean = {}
    for method, value in values.items():
        if method not in known:
            raise InvalidInputError(f"{name}: unknown model method {method!r}; methods: {', '.join(known)}")
        number = _fraction(f"{name}.{method}", value)
        if number > upper:
            raise InvalidInputError(f"{name}.{method} must be at most {upper}")
        clean[method] = number
    return MappingProxyType(clean)


@dataclass(frozen=True)
class ToolSettings:
    """Everything a user sets on a tool, with its default (this class is the one table of defaults).

    ``policy``: which models decide (``cross-check``: every active model; both pass -> pass, both
    fail -> fail, else review). ``thresholds`` / ``review_bands``: per method, a decision threshold and
    uncertainty band the user chose on the method's score (absent: the active version's calibrated
    ones). ``audit_share``: share of passes drawn into the review queue; ``holdout_share``: share of
    review verdicts held out of training; ``keep_pass_share``: share of passes whose image is kept;
    ``shifts``: the analytics shifts (None: three 8-hour shifts from 06:00 UTC); ``roi_frame``: width
    and height of the camera frame the region of interest was drawn on (``core.inspect.roi``);
    ``live``: the Live page's options. ``operating_point``: the cut points on both models' combined
    score the engineer chose from targets (``core.operating_point``); it decides only while the tool's
    deciding versions are the ones it was computed for (None: each model's threshold and band, combined
    by the policy). ``tiling``: how models trained from now on cut the ROI into tiles (``TilingOptions``).
    """

    policy: str = CROSS_CHECK
    thresholds: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    review_bands: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    audit_share: float = 0.0
    holdout_share: float = 0.2
    keep_pass_share: float = 0.05
    shifts: tuple[Shift, ...] | None = None
    roi_frame: tuple[int, int] = (640, 480)
    live: LiveOptions = field(default_factory=LiveOptions)
    operating_point: OperatingPoint | None = None
    tiling: TilingOptions = field(default_factory=TilingOptions)
    robustness: RobustnessOptions = field(default_factory=RobustnessOptions)
    signed_review: bool = False

    def validated(self) -> ToolSettings:
        """The same settings checked and normalised; InvalidInputError says what is wrong."""
        if self.policy not in policies():
            raise InvalidInputError(f"unknown policy {self.policy!r}; choose one of {', '.join(policies())}")
        return replace(
            self, thresholds=_per_method("threshold", dict(self.thresholds), 1.0),
            review_bands=_per_method("review_band", dict(self.review_bands), 0.5),
            audit_share=_fraction("audit_share", self.audit_share),
            holdout_share=_fraction("holdout_share", self.holdout_share),
            keep_pass_share=_fraction("keep_pass_share", self.keep_pass_share),
            shifts=None if not self.shifts else tuple(self.shifts), roi_frame=_frame(self.roi_frame),
            live=self.live.validated(), operating_point=_operating_point(self.operating_point),
            tiling=self.tiling.validated(), robustness=self.robustness.validated())

    @property
    def shift_list(self) -> tuple[Shift, ...]:
        return self.shifts or DEFAULT_SHIFTS

    def to_json(self) -> dict[str, Any]:
        return {"policy": self.policy, "thresholds": dict(self.thresholds), "review_bands": dict(self.review_bands),
                "audit_share": self.audit_share, "holdout_share": self.holdout_share,
                "keep_pass_share": self.keep_pass_share,
                "shifts": None if self.shifts is None else [asdict(s) for s in self.shifts],
                "roi_frame": list(self.roi_frame), "live": asdict(self.live),
                "operating_point": None if self.operating_point is None else self.operating_point.as_json(),
                "tiling": asdict(self.tiling), "signed_review": self.signed_review,
                "robustness": {"augment": self.robustness.augment, "tta": list(self.robustness.tta),
                               "position": self.robustness.position}}

    @classmethod
    def from_json(cls, stored: dict[str, Any] | None) -> ToolSettings:
        """Settings as stored on a tool; missing keys take their default, unknown ones are an error."""
        stored = dict(stored or {})
        known = {f.name for f in fields(cls)}
        unknown = set(stored) - known
        if unknown:
            raise InvalidInputError(f"unknown tool settings: {', '.join(sorted(unknown))}")
        live = stored.pop("live", None) or {}
        live_known = {f.name for f in fields(LiveOptions)}
        if set(live) - live_known:
            raise InvalidInputError(f"unknown live settings: {', '.join(sorted(set(live) - live_known))}")
        tiling = stored.pop("tiling", None) or {}
        tiling_known = {f.name for f in fields(TilingOptions)}
        if not isinstance(tiling, dict) or set(tiling) - tiling_known:
            raise InvalidInputError(f"tiling settings are {', '.join(sorted(tiling_known))}")
        robustness = stored.pop("robustness", None) or {}
        if not isinstance(robustness, dict) or set(robustness) - {f.name for f in fields(RobustnessOptions)}:
            raise InvalidInputError("robustness settings are augment, tta, position")
        shifts = stored.pop("shifts", None)
        try:
            parsed = None if not shifts else tuple(Shift(str(s["name"]), int(s["start"]), int(s["end"]))
                                                   for s in shifts)
        except (KeyError, TypeError, ValueError):
            raise InvalidInputError("shifts must be a list of {name, start, end}") from None
        for name in ("thresholds", "review_bands"):
            if name in stored:
                stored[name] = MappingProxyType(dict(stored[name] or {}))
        return cls(**stored, shifts=parsed, live=LiveOptions(**live), tiling=TilingOptions(**tiling),
                   robustness=RobustnessOptions(**robustness)).validated()

    # --- flat names, as the CLI and the audit log use them ------------------------------------
    def with_change(self, name: str, value: Any) -> ToolSettings:
        """The settings with one change by flat name: ``policy``, ``threshold.<method>``,
        ``review_band.<method>`` (``None`` or ``"calibrated"`` removes the override), ``audit_share``,
        ``holdout_share``, ``keep_pass_share``, ``shifts`` (text or None), ``live.<option>``,
        ``tiling.<option>``, ``robustness.augment``, ``robustness.tta`` (``mirror,shift`` or ``none``),
        ``robustness.position``."""
        head, _, rest = name.partition(".")
        if head in ("threshold", "review_band") and rest:
            mapping = dict(getattr(self, f"{head}s"))
            if value is None or value == "calibrated":
                mapping.pop(rest, None)
            else:
                mapping[rest] = value
            return replace(self, **{f"{head}s": MappingProxyType(mapping)}).validated()
        if head == "live" and rest:
            if rest not in {f.name for f in fields(LiveOptions)}:
                raise InvalidInputError(f"unknown live setting {rest!r}")
            return replace(self, live=replace(self.live, **{rest: _coerce(value, type(getattr(self.live, rest)))})
                           ).validated()
        if head == "tiling" and rest:
            if rest not in {f.name for f in fields(TilingOptions)}:
                raise InvalidInputError(f"unknown tiling setting {rest!r}")
            kind = str if rest == "mode" else int
            return replace(self, tiling=replace(self.tiling, **{rest: _coerce(value, kind)})).validated()
        if head == "robustness" and rest in ("augment", "tta", "position"):
            value = _coerce(value, bool) if rest in ("augment", "position") else value
            return replace(self, robustness=replace(self.robustness, **{rest: value})).validated()
        if head == "shifts" and not rest:
            return replace(self, shifts=None if value in (None, "") else
                           tuple(parse_shifts(value) if isinstance(value, str) else value)).validated()
        if head == "roi_frame" and not rest:
            text = value.lower().replace(" ", "").split("x") if isinstance(value, str) else value
            return replace(self, roi_frame=_frame(text)).validated()
        if head == "operating_point" and not rest:
            return replace(self, operating_point=value).validated()
        if name == "review.signed":
            return replace(self, signed_review=_coerce(value, bool)).validated()
        if head in ("policy", "audit_share", "holdout_share", "keep_pass_share") and not rest:
            return replace(self, **{head: value}).validated()
        raise InvalidInputError(f"unknown tool setting {name!r}; settings: {', '.join(SETTING_NAMES)}")


SETTING_NAMES = ("policy", "threshold.<method>", "review_band.<method>", "audit_share", "holdout_share",
                 "keep_pass_share", "shifts", "roi_frame", "operating_point", "review.signed",
                 *(f"live.{f.name}" for f in fields(LiveOptions)), *(f"tiling.{f.name}" for f in fields(TilingOptions)),
                 "robustness.augment", "robustness.tta", "robustness.position")


def _coerce(value: Any, kind: type) -> Any:
    """A CLI text value as ``kind`` (bool accepts true/false/on/off/1/0)."""
    if not isinstance(value, str):
        return value
    if kind is bool:
        lowered = value.strip().lower()
        if lowered not in ("true", "false", "on", "off", "1", "0", "yes", "no"):
            raise InvalidInputError(f"{value!r} is not true or false")
        return lowered in ("true", "on", "1", "yes")
    try:
        return kind(value)
    except ValueError:
        raise InvalidInputError(f"{value!r} is not a {kind.__name__}") from None


def tool_settings(studio: Studio, tool_name: str) -> ToolSettings:
    """The tool's settings (defaults filled in)."""
    with studio.transaction() as session:
        return ToolSettings.from_json(require_tool(session, tool_name).settings)


SIGNED_SETTINGS = ("policy", "thresholds", "operating_point", "signed_review")  # a change needs an e-signature


def change_settings(studio: Studio, tool_name: str, actor: Actor, changes: dict[str, Any],
                    signature_password: str | None = None) -> ToolSettings:
    """Apply ``changes`` (flat names, see :meth:`ToolSettings.with_change`) at once, validated, and record
    what changed (old and new values) in the audit log. Nothing is stored when any change is invalid.

    A change of a threshold, the policy, the operating point or signed review needs the signed-in
    account's e-signature (``signature_password``, see :func:`core.auth.signatures.sign_if_required`)."""
    require(studio, actor, Permission.CHANGE_SETTINGS, f"tool {tool_name}")
    with studio.transaction() as session:
        diff = _diff(ToolSettings.from_json(require_tool(session, tool_name).settings), changes)
    if any(key in SIGNED_SETTINGS for key in diff):
        sign_if_required(studio, actor, signature_password, Meaning.APPROVED, "tool_settings", tool_name,
                         {"tool": tool_name, "changes": diff})
    with studio.transaction() as session:
        tool = require_tool(session, tool_name)
        before = ToolSettings.from_json(tool.settings)
        after = _applied(before, changes)
        diff = _diff(before, changes)
        if diff:
            tool.settings = after.to_json()
            log(session, actor, "settings", f"tool {tool.name}", tool.id, changes=diff)
        return after


def _applied(settings: ToolSettings, changes: dict[str, Any]) -> ToolSettings:
    for name, value in changes.items():
        settings = settings.with_change(name, value)
    return settings


def _diff(before: ToolSettings, changes: dict[str, Any]) -> dict[str, dict[str, Any]]:
    old, new = before.to_json(), _applied(before, changes).to_json()
    return {key: {"from": old[key], "to": new[key]} for key in new if old[key] != new[key]}
