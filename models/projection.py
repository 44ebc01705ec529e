"""A discriminant projection of patch features, learned from good images and defective ones (real, for
the classifier; synthetic, drawn on the goods, for the anomaly model).

The patch opinion measures how far a patch lies from the good patches at its position. Plain
Euclidean distance weighs every channel direction alike, so directions in which good parts simply
vary (texture, busbar position, lighting) make noise. With a few defective images at hand, keep the
directions in which defects stand out against that variation, a regularised generalised
eigenproblem as in Fisher's discriminant (Fukunaga 1990, ch. 10):

* ``S_w``: second moment of the good patches' residuals (patch minus the mean good patch at the
  same position, leave-one-out scaled), shrunk towards a multiple of the identity (Ledoit-Wolf
  style shrinkage ``(1 - s) S_w + s tr(S_w) / D I``) because a few dozen images give a noisy estimate;
* ``S_b``: second moment of the residuals of the patches that show the defects: where a synthetic
  defect was drawn (``where``, known exactly), or else the ``top`` most deviating patches of each
  defective image (where its defect probably is; the image label says only that there is one somewhere);
* ``W``: the ``dims`` leading solutions of ``S_b v = l S_w v``, scaled so that ``v' S_w v = 1``.

Distances between projected patches ``W' x`` are then Mahalanobis-like in the good variation and
look only where defects differ. With ``dims`` well below the channel count it also makes the
per-patch distances cheaper than on the raw features.
"""

from __future__ import annotations

import torch


def _residual_moment(residuals: torch.Tensor) -> torch.Tensor:
    """``(N, D)`` residuals to their second moment ``(D, D)``."""
    return residuals.T @ residuals / max(1, residuals.shape[0])


def discriminant_projection(patches: torch.Tensor, is_good: torch.Tensor, dims: int, shrinkage: float,
                            top: int, where: torch.Tensor | None = None) -> torch.Tensor:
    """The projection ``W (D, dims)`` of the module docstring.

    ``patches (N, D, h, w)`` of the training images, ``is_good (N,)`` boolean with at least two
    goods and one other image; ``where (N_defective, h, w)`` boolean, when known, marks the patches of
    each defective image (in order) that show its defect. Computed in float64; returned as float32.
    """
    goods, defects = patches[is_good], patches[~is_good]
    if where is not None and where.any():
        return projection_from_defect_patches(goods, *patches_at(defects, where), dims, shrinkage)
    x, channels = defects.double(), patches.shape[1]
    within, mean, typical = _within(goods, shrinkage)
    defect_residuals = (x - mean).flatten(2)  # (Nd, D, hw)
    deviation = defect_residuals.square().sum(dim=1) / typical.flatten().clamp_min(1e-12)
    worst = deviation.topk(min(top, deviation.shape[1]), dim=1).indices  # (Nd, top)
    picked = torch.gather(defect_residuals, 2, worst[:, None, :].expand(-1, channels, -1)).permute(0, 2, 1)
    return _solve(within, _residual_moment(picked.reshape(-1, channels)), dims)


def patches_at(images: torch.Tensor, where: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The patch features ``(P, D)`` of ``images (N, D, h, w)`` at the cells marked in ``where (N, h, w)``
    (image by image, row-major) and the flat grid cell ``(P,)`` of each."""
    flat = where.flatten(1)
    return images.permute(0, 2, 3, 1)[where], flat.nonzero()[:, 1]


def projection_from_defect_patches(goods: torch.Tensor, defect_patches: torch.Tensor, cells: torch.Tensor,
                                   dims: int, shrinkage: float) -> torch.Tensor:
    """The projection ``W (D, dims)`` from the good images' patches ``(N, D, h, w)`` (at least two) and
    the patch features ``(P, D)`` known to show defects, at flat grid cells ``cells (P,)``: ``S_b`` is
    their second moment about the mean good patch of their cell. Float64 inside, float32 out."""
    within, mean, _ = _within(goods, shrinkage)
    residuals = defect_patches.double() - mean.flatten(1).T[cells]  # (P, D)
    return _solve(within, _residual_moment(residuals), dims)


def _within(goods: torch.Tensor, shrinkage: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Shrunk ``S_w (D, D)`` of the goods ``(N, D, h, w)``, their mean patch ``(D, h, w)`` and the squared
    deviation of goods at each cell ``(h, w)``."""
    x = goods.double()
    n_goods, channels = x.shape[0], x.shape[1]
    mean = x.mean(dim=0)  # (D, h, w)
    good_residuals = (x - mean) * (n_goods / (n_goods - 1))  # each good against the mean of the others
    within = _residual_moment(good_residuals.permute(0, 2, 3, 1).reshape(-1, channels))
    scale = torch.trace(within) / channels
    # a floor keeps S_w positive definite when the goods do not vary at all (pixel-identical images give
    # S_w = 0, and Cholesky of a singular matrix fails); relative to the patches' own size, so it is
    # negligible whenever the goods vary
    floor = 1e-6 * (x.square().mean() + 1e-12)
    within = (1 - shrinkage) * within + (shrinkage * scale + floor) * torch.eye(channels, dtype=within.dtype)
    return within, mean, good_residuals.square().sum(dim=1).mean(dim=0)


def _solve(within: torch.Tensor, between: torch.Tensor, dims: int) -> torch.Tensor:
    """The ``dims`` leading solutions of ``S_b v = l S_w v`` with ``v' S_w v = 1``, as columns."""
    channels = within.shape[0]
    factor, info = torch.linalg.cholesky_ex(within)
    if int(info) != 0:  # not positive definite in floating point: strengthen the floor once more
        factor = torch.linalg.cholesky(within + 1e-3 * (torch.trace(within) / channels)
                                       * torch.eye(channels, dtype=within.dtype))
    whiten = torch.linalg.inv(factor)  # L^-1 with L L' = S_w
    _, vectors = torch.linalg.eigh(whiten @ between @ whiten.T)  # ascending eigenvalues
    return (whiten.T @ vectors[:, -dims:].flip(1)).float()


def project(patches: torch.Tensor, projection: torch.Tensor) -> torch.Tensor:
    """``(B, D, h, w)`` patch features to ``(B, dims, h, w)`` with ``projection (D, dims)``."""
    return torch.einsum("bchw,cd->bdhw", patches, projection).contiguous()
