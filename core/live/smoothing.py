"""Moving average of a tool's defect score over the last N frames."""

from __future__ import annotations

from collections import deque


class MovingAverage:
    """Mean of the last ``size`` values; ``reset`` when a new part arrives so parts do not mix."""

    def __init__(self, size: int) -> None:
        self._values: deque[float] = deque(maxlen=max(1, size))

    def resize(self, size: int) -> None:
        """Change N live; the newest values are kept."""
        size = max(1, size)
        if size != self._values.maxlen:
            self._values = deque(self._values, maxlen=size)

    def add(self, value: float) -> float:
        self._values.append(value)
        return self.value

    @property
    def value(self) -> float:
        return sum(self._values) / len(self._values) if self._values else 0.0

    @property
    def full(self) -> bool:
        """True when N values of the current part are averaged."""
        return len(self._values) == self._values.maxlen

    def reset(self) -> None:
        self._values.clear()
