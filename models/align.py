"""Alignment: a similarity transform from the five landmarks to an embedder's chip template.

Chips for MTCNN-point templates are warped in torch (``grid_sample``) so they can run beside
the embedder on a GPU; faces much larger than the chip are first downscaled with an
antialiasing filter (sampling a 400 px face straight down to 150 px aliases and costs
accuracy). Chips for dlib's 5-point template are cut exactly as dlib's ``get_face_chip`` cuts
them (:func:`dlib_face_chip`, numpy): the dlib ResNet was trained on those pixels, and the
plain warp differed from them by ~5 grey levels on average (embedding cosine ~0.9987).
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
    if chip.landmarks == "dlib5":
        # dlib's own chips (get_face_chip): the dlib ResNet was trained on exactly these pixels
        dev = rgb.device if isinstance(rgb, torch.Tensor) else torch.device("cpu")
        arr = rgb.cpu().numpy() if isinstance(rgb, torch.Tensor) else np.ascontiguousarray(rgb)
        if len(landmarks) == 0:
            return torch.zeros((0, 3, chip.size, chip.size), dtype=torch.uint8, device=dev)
        cut = np.stack([dlib_face_chip(arr, pts, chip) for pts in landmarks])
        return torch.from_numpy(cut).permute(0, 3, 1, 2).contiguous().to(dev)
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


# ------------------------------------------------------------------------------------------------
# dlib's get_face_chip, reproduced: the chips dlib's face-recognition ResNet was trained on


#: dlib's ``pyramid_down<2>`` filter (separable, sum 16 per axis)
_PYR_TAPS = (1, 4, 6, 4, 1)


def _dlib_pyramid_down(img: np.ndarray) -> np.ndarray:
    """dlib's ``pyramid_down<2>`` on (H,W,3) uint8: separable [1 4 6 4 1] filter, every other
    pixel from the third, (H-3)//2 x (W-3)//2 out, integer sums truncated (as dlib's rgb path)."""
    h, w = img.shape[:2]
    oh, ow = (h - 3) // 2, (w - 3) // 2
    if oh <= 0 or ow <= 0:
        return np.zeros((max(oh, 0), max(ow, 0), 3), np.uint8)
    src = img.astype(np.int32)  # sums stay below 255 * 256
    horiz = np.zeros((h, ow, 3), np.int32)
    for k, t in enumerate(_PYR_TAPS):
        horiz += t * src[:, k : k + 2 * ow : 2]
    both = np.zeros((oh, ow, 3), np.int32)
    for k, t in enumerate(_PYR_TAPS):
        both += t * horiz[k : k + 2 * oh : 2]
    return (both >> 8).astype(np.uint8)


def _rect_down(rect: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    """dlib ``pyramid_down<2>::rect_down``: each corner ``p / 2 - (1.25, 0.75)``."""
    left, top, right, bottom = rect
    return left / 2 - 1.25, top / 2 - 0.75, right / 2 - 1.25, bottom / 2 - 0.75


def _drect_area(rect: tuple[float, float, float, float]) -> float:
    left, top, right, bottom = rect
    return max(0.0, right - left + 1) * max(0.0, bottom - top + 1)


def _bilinear_dlib(img: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """dlib ``interpolate_bilinear`` at float positions: a sample whose 2x2 neighbourhood is not
    wholly inside the image is 0; values truncated to uint8 (dlib's rgb assignment)."""
    h, w = img.shape[:2]
    left = np.floor(x)
    top = np.floor(y)
    ok = (left >= 0) & (top >= 0) & (left + 1 < w) & (top + 1 < h)
    i00 = np.where(ok, top * w + left, 0).astype(np.intp)
    flat = img.reshape(-1, img.shape[2])
    tl, tr = flat[i00].astype(np.float64), flat[i00 + ok].astype(np.float64)
    bl, br = flat[i00 + w * ok].astype(np.float64), flat[i00 + (w + 1) * ok].astype(np.float64)
    fx = (x - left)[..., None]
    fy = (y - top)[..., None]
    val = (1 - fy) * ((1 - fx) * tl + fx * tr) + fy * ((1 - fx) * bl + fx * br)
    out = val.astype(np.uint8)  # truncation, as dlib assigns double -> unsigned char (0 <= val <= 255)
    out[~ok] = 0
    return out


_Rect = tuple[float, float, float, float]


def _chip_from(img: np.ndarray, rect: _Rect, angle: float, size: int) -> np.ndarray:
    """dlib ``extract_image_chip`` of a ``size`` square: chip pixels 0 and size-1 land on the
    corners of ``rect`` (image px) turned by ``angle`` about its centre; bilinear."""
    left, top, right, bottom = rect
    cx, cy = (left + right) / 2, (top + bottom) / 2
    step_x = (right - left) / (size - 1)
    step_y = (bottom - top) / (size - 1)
    us, vs = np.meshgrid(np.arange(size, dtype=np.float64), np.arange(size, dtype=np.float64), indexing="xy")
    dx = left + us * step_x - cx
    dy = top + vs * step_y - cy
    c, s = math.cos(angle), math.sin(angle)
    return _bilinear_dlib(img, cx + c * dx - s * dy, cy + s * dx + c * dy)


def dlib_face_chip(rgb: np.ndarray, points: np.ndarray, chip: ChipSpec) -> np.ndarray:
    """(size,size,3) uint8: the chip ``dlib.get_face_chip(rgb, shape, size, padding)`` cuts for
    the five dlib shape-predictor ``points`` (5,2) px, where ``chip.template`` is
    ``dlib_chip_template(size, padding)``.

    dlib fits the similarity from the template to the points (least squares in image space),
    samples a rectangle ``size * scale - 1`` px wide around the template centre's image point
    (chip pixels 0 and size-1 on its corners), and reads large faces from a ``pyramid_down<2>``
    level (the coarsest whose rectangle still has more pixels than the chip) instead of
    sampling the full-resolution image sparsely. All three are reproduced here, so the ResNet
    sees the chips it was trained on (``tests/models/test_dlib_chip.py``).
    """
    size = chip.size
    m = similarity_transform(chip.template, points)  # chip -> image, unweighted like dlib
    angle = math.atan2(m[1, 0], m[0, 0])
    scale = math.hypot(m[0, 0], m[1, 0])
    cx, cy = m[:, :2] @ np.array([size / 2, size / 2]) + m[:, 2]
    half = (size * scale - 1) / 2
    rect = (cx - half, cy - half, cx + half, cy + half)
    # pyramid depth: dlib shrinks the rectangle while the next level still exceeds the chip's area
    depth, r = 0, _rect_down(rect)
    grow = 2.0
    while _drect_area(r) > size * size:
        r = _rect_down(r)
        depth += 1
        grow = grow * 2 + 2
    if depth == 0:
        return _chip_from(rgb, rect, angle, size)
    h, w = rgb.shape[:2]
    # the sub-image dlib builds its pyramid on: the turned rectangle grown by ``grow``, in the image
    co, si = math.cos(angle), math.sin(angle)
    corners = np.array([[rect[0], rect[1]], [rect[2], rect[1]], [rect[0], rect[3]], [rect[2], rect[3]]])
    d = corners - [cx, cy]
    turned = np.stack([cx + co * d[:, 0] - si * d[:, 1], cy + si * d[:, 0] + co * d[:, 1]], axis=1)
    gl, gt = turned.min(0) - grow
    gr, gb = turned.max(0) + grow
    gl, gt, gr, gb = max(gl, 0.0), max(gt, 0.0), min(gr, w - 1.0), min(gb, h - 1.0)
    bl, bt, br, bb = (math.floor(v + 0.5) for v in (gl, gt, gr, gb))  # drectangle -> rectangle
    if br < bl or bb < bt:
        return np.zeros((size, size, 3), np.uint8)
    level = np.ascontiguousarray(rgb[bt : bb + 1, bl : br + 1])
    r = (rect[0] - bl, rect[1] - bt, rect[2] - bl, rect[3] - bt)
    for _ in range(depth):
        level = _dlib_pyramid_down(level)
        r = _rect_down(r)
        if level.shape[0] < 2 or level.shape[1] < 2:
            return np.zeros((size, size, 3), np.uint8)
    return _chip_from(level, r, angle, size)
