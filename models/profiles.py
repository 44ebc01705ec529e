"""Network profiles, fastest first: which backbone, at which input size.

Measured with the few-shot classifier on ELPV (bench/RESULTS.md, 2026-11-25, 5 seeds, all other cells):
Lite1 at 240 px is the one that meets issue 4's accuracy targets (K = 20 bal. acc. 0.774 / AUC 0.845,
K = 30 0.790 / 0.866; Lite0 at 224 px 0.766 / 0.839 and 0.776 / 0.858) for about 1.2x the training time;
Lite2 at 260 px was no better than Lite1 in exploration (K = 20 AUC 0.833 vs 0.848, 3 seeds).
So Lite1 is the default; its model call takes about 30 ms at batch 1 on 2 cores against Lite0's 15 ms.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    name: str
    backbone: str
    input_size: int
    description: str


PROFILES: dict[str, Profile] = {
    "fast": Profile("fast", "efficientnet-lite0", 224, "EfficientNet-Lite0, 224 px: quickest"),
    "balanced": Profile("balanced", "efficientnet-lite1", 240,
                        "EfficientNet-Lite1, 240 px: more accurate on ELPV"),
    "accurate": Profile("accurate", "efficientnet-lite2", 260,
                        "EfficientNet-Lite2, 260 px: largest network (not more accurate on ELPV)"),
}


DEFAULT_PROFILE = "balanced"  # the one that meets the accuracy targets (see the module doc)
# A tiled tool's default: tiles multiply the network passes (60 per solar module), and Lite0 at 224 px is as
# accurate on cell tiles (bench/RESULTS.md "Tiling: session 9") at about half Lite1's time per tile.
TILED_PROFILE = "fast"


def default_profile(tiled: bool) -> str:
    """The profile a tool's models train with unless the user picks one."""
    return TILED_PROFILE if tiled else DEFAULT_PROFILE


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}") from None
