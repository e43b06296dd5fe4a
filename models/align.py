"""Alignment: a similarity transform from the five landmarks to an embedder's chip template.

The warp runs in torch (``grid_sample``) so it can run beside the embedder on a GPU. Faces
much larger than the chip are first downscaled with an antialiasing filter: sampling a
400 px face straight down to 150 px aliases and costs accuracy.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from models.device import image_tensor
from models.embedders.base import ChipSpec


def similarity_transform(src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Weighted least-squares similarity (Umeyama) mapping ``src`` (k,2) onto ``dst`` (k,2).

    Returns a (2,3) float64 matrix M with ``dst ≈ src @ M[:, :2].T + M[:, 2]``.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    w = np.ones(len(src)) if weights is None else np.asarray(weights, np.float64)
    w = w / w.sum()
    mu_s, mu_d = w @ src, w @ dst
    s0, d0 = src - mu_s, dst - mu_d
    cov = (d0 * w[:, None]).T @ s0
    u, sig, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1
    rot = u @ sign @ vt
    var_s = float(w @ (s0**2).sum(axis=1))
    scale = float((sig * np.diag(sign)).sum() / var_s) if var_s > 0 else 1.0
    t = mu_d - scale * rot @ mu_s
    return np.hstack([scale * rot, t[:, None]])


def align_faces(rgb: np.ndarray | torch.Tensor, landmarks: np.ndarray, chip: ChipSpec) -> torch.Tensor:
    """Cut aligned chips out of one image.

    ``rgb`` (H,W,3) uint8 (numpy or a tensor on the target device); ``landmarks`` (n,5,2) px.
    Returns (n,3,size,size) uint8 on the image's device.
    """
    img = image_tensor(rgb) if isinstance(rgb, np.ndarray) else rgb
    n = landmarks.shape[0]
    size = chip.size
    if n == 0:
        return torch.zeros((0, 3, size, size), dtype=torch.uint8, device=img.device)
    src_full = img.permute(2, 0, 1).float()  # (3,H,W)
    h, w = img.shape[0], img.shape[1]
    chips = []
    for i in range(n):
        m = similarity_transform(landmarks[i], chip.template, chip.weights)
        scale = math.hypot(m[0, 0], m[1, 0])  # chip px per image px
        inv = _invert(m)
        # The image-space region the chip samples from, with a small margin for bilinear taps.
        corners = np.array([[0, 0], [size, 0], [0, size], [size, size]], np.float64)
        pre = corners @ inv[:, :2].T + inv[:, 2]
        x0, y0 = np.floor(pre.min(0)).astype(int) - 2
        x1, y1 = np.ceil(pre.max(0)).astype(int) + 2
        xa, ya, xb, yb = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
        if xb <= xa or yb <= ya:
            chips.append(torch.zeros((3, size, size), dtype=torch.uint8, device=img.device))
            continue
        region = src_full[:, ya:yb, xa:xb]
        factor = 1.0
        if scale < 0.5:
            # Downscale to ~1.5x the chip's resolution before sampling.
            factor = min(1.0, scale * 1.5)
            new_h = max(2, round(region.shape[1] * factor))
            new_w = max(2, round(region.shape[2] * factor))
            fy, fx = new_h / region.shape[1], new_w / region.shape[2]
            region = F.interpolate(region[None], size=(new_h, new_w), mode="bilinear", antialias=True)[0]
        else:
            fy = fx = 1.0
        # Chip pixel (u,v) -> image pixel -> region pixel, as normalised grid coords.
        us, vs = torch.meshgrid(
            torch.arange(size, dtype=torch.float64), torch.arange(size, dtype=torch.float64), indexing="xy"
        )
        ix = inv[0, 0] * us + inv[0, 1] * vs + inv[0, 2]
        iy = inv[1, 0] * us + inv[1, 1] * vs + inv[1, 2]
        rx = (ix - xa + 0.5) * fx - 0.5
        ry = (iy - ya + 0.5) * fy - 0.5
        gx = (2.0 * rx + 1.0) / region.shape[2] - 1.0
        gy = (2.0 * ry + 1.0) / region.shape[1] - 1.0
        grid = torch.stack([gx, gy], dim=-1).float()[None].to(img.device)
        out = F.grid_sample(region[None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        chips.append(out[0].round().clamp(0, 255).to(torch.uint8))
    return torch.stack(chips)


def _invert(m: np.ndarray) -> np.ndarray:
    a = np.vstack([m, [0.0, 0.0, 1.0]])
    return np.linalg.inv(a)[:2]
