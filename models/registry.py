"""Every inspection method by name: the one place ``core/`` builds and loads models through.

Adding a method: a folder in ``models/`` whose estimator follows ``models.base.InspectionMethod``,
and one line in ``_CLASSES`` below (docs/ARCHITECTURE.md, "Adding a model method").
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

from models.artifact_meta import META_FILE, ArtifactError, method_and_format

if TYPE_CHECKING:
    from models.base import InspectionMethod

# name -> "module:class"; each class's ``method`` attribute is its name (tests/models/test_methods.py). Classes
# are imported when first used, so naming the methods (the CLI's choices) does not load torch.
_CLASSES: dict[str, str] = {
    "classifier": "models.classifier:FewShotClassifier",
    "anomaly": "models.anomaly:PatchCoreDetector",
    "knn": "models.knn:KnnDetector",
}
DEFAULT_METHOD = "classifier"  # what ``train`` fits unless told otherwise
# Methods with training-time augmentation (``models.augment``) and the hyper-parameters a tool's
# ``robustness.augment`` gives them (bench/robustness.py measured what they buy): the classifier learns
# from the fixed variants ``models.augment.LINE_VARIANTS`` of every training image, the anomaly model
# keeps them for each good in its memory.
AUGMENTED: dict[str, dict[str, object]] = {"classifier": {"augment": "line"}, "anomaly": {"augment": "line"}}


def method_names() -> list[str]:
    """The registered methods' names, in registration order."""
    return list(_CLASSES)


def get_method(name: str) -> type[InspectionMethod]:
    """The estimator class registered as ``name`` (ValueError naming the known ones otherwise)."""
    try:
        module, cls = _CLASSES[name].split(":")
    except KeyError:
        raise ValueError(f"unknown model method {name!r}; choose one of {', '.join(_CLASSES)}") from None
    return getattr(importlib.import_module(module), cls)


def build(name: str, *, profile: str, good_class: str, seed: int = 0,
          tiling: tuple[int, int] | None = None, align: bool = False, augment: bool = False) -> InspectionMethod:
    """An unfitted model of method ``name`` with the product's hyper-parameters; with ``tiling``
    (tile px, overlap px) that method tiled (``models.tiling``; with ``align`` the tiles are the cells
    between the part's grid lines): one model over all tiles for the methods whose ``tile_memory`` is
    ``shared``, else one per tile position; with ``augment`` trained also on changed copies of the images
    (light, position, motion) where the method learns from them (``AUGMENTED``; the others ignore it)."""
    from models.tiling import TiledModel

    cls = get_method(name)
    extra = AUGMENTED.get(name, {}) if augment else {}
    if tiling is None:
        return cls(profile=profile, good_class=good_class, seed=seed, **extra)
    return TiledModel(lambda s: cls(profile=profile, good_class=good_class, seed=s, **extra), tile_px=tiling[0],
                      overlap=tiling[1], seed=seed, memory=getattr(cls, "tile_memory", "position"), align=align)


def load_model(folder: Path) -> InspectionMethod:
    """The model saved in ``folder``, whichever method saved it (artifacts from before the common
    ``model.json`` scheme included); ArtifactError when it cannot be used."""
    from models.tiling import TILE_FILE, TiledModel

    if (Path(folder) / TILE_FILE).is_file():
        try:
            return TiledModel.load(folder, load_model)
        except (OSError, TypeError, ValueError, KeyError) as error:
            raise ArtifactError(f"{folder} does not hold a usable tiled model: {error}") from error
    meta_file = Path(folder) / META_FILE
    try:
        name, _ = method_and_format(json.loads(meta_file.read_text()))
        cls = get_method(name)
    except FileNotFoundError:
        raise ArtifactError(f"model files missing in {folder}") from None
    except (OSError, TypeError, ValueError, AttributeError) as error:
        raise ArtifactError(f"{folder} does not hold a usable model: {error}") from error
    return cls.load(folder)
