"""bench/tiling.py's modules: by default each module is made of one cell type (a real solar module is), its
defective cell of that type, the training modules half of each type and all their cells distinct; ``--mixed``
(no types) keeps cells of both types in a module. Small 2 x 3 modules of coded cells: pixel (0, 0) is the
cell's type code, pixels (0, 1) and (0, 2) its index."""

from __future__ import annotations

import numpy as np
import pytest

from bench import tiling

TYPE_CODE = {"mono": 10, "poly": 20}
DEFECT_CODE = {"mono": 110, "poly": 120}


@pytest.fixture
def cells(monkeypatch: pytest.MonkeyPatch) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    monkeypatch.setattr(tiling, "ROWS", 2)
    monkeypatch.setattr(tiling, "COLS", 3)
    monkeypatch.setattr(tiling, "TEST", 12)
    kinds = ["mono"] * 60 + ["poly"] * 90 + ["mono"] * 8 + ["poly"] * 8  # 150 goods, then 16 defects
    images = np.zeros((len(kinds), tiling.CELL, tiling.CELL), np.uint8)
    for index, kind in enumerate(kinds):
        images[index, 0, 0] = (DEFECT_CODE if index >= 150 else TYPE_CODE)[kind]
        images[index, 0, 1:3] = divmod(index, 256)
    return images, np.arange(150), np.arange(150, len(kinds)), np.array(kinds)


def _codes(module: np.ndarray) -> tuple[list[int], list[int]]:
    """The type codes and indices of a module's cells, row-major."""
    boxes = [tiling.cell_box(k) for k in range(tiling.ROWS * tiling.COLS)]
    return ([int(module[y0, x0, 0]) for y0, x0, _, _ in boxes],
            [int(module[y0, x0 + 1, 0]) * 256 + int(module[y0, x0 + 2, 0]) for y0, x0, _, _ in boxes])


def test_each_module_is_of_one_cell_type(cells) -> None:
    images, goods, defects, types = cells
    train, test, labels, where = tiling.make_sets(images, goods, defects, seed=3, types=types)
    train_codes = [_codes(m) for m in train]
    assert [set(codes) for codes, _ in train_codes] == [{10}] * 5 + [{20}] * 5
    indices = [i for _, ids in train_codes for i in ids]
    assert len(set(indices)) == len(indices) == tiling.TRAIN * 6  # no cell twice in training
    seen_types = set()
    for module, label, spot in zip(test, labels, where, strict=True):
        codes, ids = _codes(module)
        kind = "mono" if codes[0] in (10, 110) else "poly"
        seen_types.add(kind)
        assert not set(ids) & set(indices)  # test cells are not training cells
        goods_codes = [c for k, c in enumerate(codes) if k != spot]
        assert set(goods_codes) == {TYPE_CODE[kind]}
        assert (codes[spot] == DEFECT_CODE[kind]) if label else spot == -1
    assert seen_types == {"mono", "poly"}


def test_mixed_modules_keep_both_types_at_random(cells) -> None:
    images, goods, defects, _ = cells
    train, test, labels, _ = tiling.make_sets(images, goods, defects, seed=3)
    assert len(train) == tiling.TRAIN and len(test) == 2 * tiling.TEST and labels.sum() == tiling.TEST
    assert any(len({c % 100 for c in _codes(m)[0]}) == 2 for m in train + test)
    again = tiling.make_sets(images, goods, defects, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(test, again[1], strict=True))
