"""Network profiles, fastest to most accurate: which backbone, at which input size."""

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
    "balanced": Profile("balanced", "efficientnet-lite1", 240, "EfficientNet-Lite1, 240 px"),
    "accurate": Profile("accurate", "efficientnet-lite2", 260, "EfficientNet-Lite2, 260 px: most accurate"),
}


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}") from None
