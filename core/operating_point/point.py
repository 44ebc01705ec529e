"""The operating point a tool stores (``ToolSettings.operating_point``): what was asked, what was
chosen and promised, and the model versions it was computed for. Plain JSON, no pickles."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from core.operating_point.choose import Choice, Targets
from core.operating_point.combine import Combination


@dataclass(frozen=True)
class OperatingPoint:
    """Cut points ``lo <= hi`` on the combined score of ``combination`` (below ``lo`` passes, above ``hi``
    fails, between goes to a person), valid only while the tool's deciding versions are ``versions``."""

    versions: Mapping[str, int]
    targets: Targets
    combination: Combination
    lo: float
    hi: float
    rule: str
    promised: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    sentence: str = ""

    def validated(self) -> OperatingPoint:
        if not self.versions or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                                        for v in self.versions.values()):
            raise ValueError("an operating point names the model versions it was computed for")
        if set(self.versions) != set(self.combination.methods):
            raise ValueError("an operating point combines exactly the models of its versions")
        if not (math.isfinite(self.lo) and math.isfinite(self.hi) and 0.0 <= self.lo <= self.hi <= 1.0):
            raise ValueError("an operating point's cut points satisfy 0 <= lo <= hi <= 1")
        return self

    def applies_to(self, version_ids: Mapping[str, int]) -> bool:
        """True when the deciding models are exactly the versions it was computed for."""
        return dict(self.versions) == dict(version_ids)

    def as_json(self) -> dict[str, Any]:
        return {"versions": dict(self.versions), "targets": self.targets.as_json(),
                "combination": self.combination.as_json(), "lo": self.lo, "hi": self.hi, "rule": self.rule,
                "promised": dict(self.promised), "sentence": self.sentence}

    @classmethod
    def from_json(cls, stored: Mapping[str, Any]) -> OperatingPoint:
        """Parse a stored point; ValueError (with what is wrong) for anything malformed."""
        try:
            return cls(MappingProxyType({str(m): int(v) for m, v in dict(stored["versions"]).items()}),
                       Targets.from_json(stored["targets"]), Combination.from_json(stored["combination"]),
                       float(stored["lo"]), float(stored["hi"]), str(stored.get("rule", "")),
                       MappingProxyType(dict(stored.get("promised") or {})), str(stored.get("sentence", ""))
                       ).validated()
        except (KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"not an operating point: {error}") from None

    @classmethod
    def from_choice(cls, choice: Choice, versions: Mapping[str, int]) -> OperatingPoint:
        promised = {"estimate": choice.promised.as_json(), "counts": choice.counts.as_json(),
                    "n_good": choice.n_good, "n_defect": choice.n_defect, "problems": list(choice.problems),
                    "adapted": None if choice.adapted is None else choice.adapted.as_json()}
        return cls(MappingProxyType(dict(versions)), choice.targets, choice.combination, choice.lo, choice.hi,
                   choice.rule, MappingProxyType(promised), choice.sentence()).validated()
