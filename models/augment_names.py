"""The test-time variants by name, without torch: what a tool's ``robustness.tta`` setting may hold.

``models.augment`` builds the views of each name (``TTA_VARIANTS``); settings, pages and the command line
check names here without loading a network.
"""

from __future__ import annotations

MIRROR = "mirror"  # every model does the mirror itself, in one batch
SHIFT_VIEWS = "shift"  # two views moved diagonally by +-3 % of the ROI
LIGHT_VIEWS = "light"  # two views at gamma 0.85 and 1.18
TTA_NAMES = (MIRROR, SHIFT_VIEWS, LIGHT_VIEWS)  # canonical order


def check_tta(variants: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The variants in canonical order, duplicates dropped; ValueError naming the known ones."""
    unknown = set(variants) - set(TTA_NAMES)
    if unknown:
        raise ValueError(f"unknown test-time variants {', '.join(sorted(unknown))}; choose from {', '.join(TTA_NAMES)}")
    return tuple(name for name in TTA_NAMES if name in variants)
