"""core.dataset_checks: the Train page's warnings before training (too few images, imbalance)."""

from __future__ import annotations


def test_count_warnings_say_how_many_images_each_class_still_needs() -> None:
    from core.dataset_checks import count_warnings  # the module must import (the Train page needs it)

    assert count_warnings({"good": 3, "defective": 0}) == [
        "'good' has 3 image(s): add 2 more to train.", "'defective' has 0 image(s): add 5 more to train."]
    assert count_warnings({"good": 20, "defective": 20}) == []
