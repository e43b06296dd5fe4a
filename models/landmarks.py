"""dlib's 5-point face shape predictor (``shape_predictor_5_face_landmarks.dat``) in numpy.

A bit-for-bit port of ``dlib::shape_predictor::operator()`` (``dlib/image_processing/
shape_predictor.h``): an ensemble-of-regression-trees cascade (Kazemi & Sullivan 2014) run on
a face box. dlib is not needed at run time; it is only the tests' reference.

Format of the ``.dat`` (dlib's ``serialize(shape_predictor)``), read with the serialization
primitives of :mod:`models.dlib_dat`:

- ``int`` version (must be 1);
- ``initial_shape``: ``matrix<float,0,1>``, the mean shape in box-normalised coordinates
  (x0, y0, x1, y1, ...). A dlib matrix writes ``-nr, -nc`` (signed packed ints; negative marks
  the current format, positive the pre-2013 one with nr/nc swapped) then the elements row by
  row, each a ``float_details``;
- ``forests``: ``std::vector<std::vector<regression_tree>>``, one inner vector per cascade
  level. A ``std::vector`` is an ``unsigned long`` size then its elements. A tree is
  ``splits`` (vector of ``split_feature {unsigned long idx1, unsigned long idx2, float thresh}``)
  then ``leaf_values`` (vector of ``matrix<float,0,1>``, one shape increment per leaf);
- ``anchor_idx``: ``std::vector<std::vector<unsigned long>>``, per cascade and feature pixel,
  the shape part the pixel hangs off;
- ``deltas``: ``std::vector<std::vector<dlib::vector<float,2>>>``, the pixel's offset from that
  part in the initial shape's frame (a ``dlib::vector<float,2>`` is just x then y).

The shipped file: 5 parts, 15 cascades x 500 trees of depth 4 (15 splits, 16 leaves), 800
feature pixels per cascade; every float is a ``float_details`` (no raw float32 blocks), so it
parses in ~2 s in Python. The parsed arrays are cached as an ``.npz`` keyed by the file's
sha256, like the ResNet weights (:func:`load_shape_predictor`).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facestream.atomic import replacing
from facestream.errors import ModelUnavailable
from facestream.types import ALL_LANDMARK_TYPES
from models.dlib_dat import _Reader, load_converted

logger = logging.getLogger(__name__)

SP5_FILENAME = "shape_predictor_5_face_landmarks.dat"
#: iBUG 300-W's 68 points (jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, mouth 48-67)
SP68_FILENAME = "shape_predictor_68_face_landmarks.dat"
#: Bumped when the cached arrays' layout changes; part of the cache file name.
CACHE_FORMAT = 1
NUM_PARTS = 5

#: dlib's ``get_face_chip_details`` mean positions of the 5 shape-predictor points in a unit
#: chip without padding (``dlib/image_transforms/interpolation.h``), in part order.
DLIB_5PT_MEAN_FACE = np.array(
    [
        [0.8595674595992, 0.2134981538014],
        [0.6460604764104, 0.2289674387677],
        [0.1205750620789, 0.2137274526848],
        [0.3340850613712, 0.2290642403242],
        [0.4901123135679, 0.6277975316475],
    ],
    dtype=np.float64,
)

#: name -> (ndim, dtype) of every array a parsed model holds; see :class:`ShapePredictorModel`.
_ARRAY_SPECS: dict[str, tuple[int, type[np.generic]]] = {
    "initial_shape": (2, np.float32),
    "split_idx": (4, np.int32),
    "split_thresh": (3, np.float32),
    "leaf_values": (5, np.float32),
    "anchor_idx": (2, np.int32),
    "deltas": (3, np.float32),
}


# ------------------------------------------------------------------------------------------------
# the parsed model


@dataclass(frozen=True)
class ShapePredictorModel:
    """A parsed shape predictor, as dense arrays (C cascades, T trees per cascade, S = L - 1
    splits and L leaves per tree, P parts, F feature pixels per cascade).

    - ``initial_shape`` (P, 2) float32: mean shape, box-normalised (0..1 spans the box).
    - ``split_idx`` (C, T, S, 2) int32: ``idx1, idx2`` of each split (feature pixel indices).
    - ``split_thresh`` (C, T, S) float32: go left iff ``pixel[idx1] - pixel[idx2] > thresh``.
    - ``leaf_values`` (C, T, L, P, 2) float32: shape increment (box-normalised) of each leaf.
    - ``anchor_idx`` (C, F) int32: the part each feature pixel is placed relative to.
    - ``deltas`` (C, F, 2) float32: the pixel's offset from that part, in the initial shape.

    dlib allows trees of different sizes; the vectorised predictor needs every tree complete
    and of one depth, which the parser checks (true of every model dlib's trainer writes).
    """

    initial_shape: np.ndarray
    split_idx: np.ndarray
    split_thresh: np.ndarray
    leaf_values: np.ndarray
    anchor_idx: np.ndarray
    deltas: np.ndarray

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in _ARRAY_SPECS}

    def check(self) -> str | None:
        """What is inconsistent about the arrays, or None if they form a usable model."""
        for name, (ndim, dtype) in _ARRAY_SPECS.items():
            a = getattr(self, name)
            if not isinstance(a, np.ndarray) or a.ndim != ndim or a.dtype != dtype:
                return f"{name}: expected a {ndim}-d {np.dtype(dtype)} array"
        p = self.initial_shape.shape[0]
        c, t, s, _ = self.split_idx.shape
        n_leaves = s + 1
        f = self.anchor_idx.shape[1]
        want = {
            "initial_shape": (p, 2),
            "split_idx": (c, t, s, 2),
            "split_thresh": (c, t, s),
            "leaf_values": (c, t, n_leaves, p, 2),
            "anchor_idx": (c, f),
            "deltas": (c, f, 2),
        }
        for name, shape in want.items():
            if getattr(self, name).shape != shape:
                return f"{name}: shape {getattr(self, name).shape}, expected {shape}"
        if min(p, c, t, f) < 1 or n_leaves & (n_leaves - 1):
            return f"degenerate model: {p} parts, {c} cascades, {t} trees, {f} pixels, {n_leaves} leaves"
        if self.split_idx.size and (self.split_idx.min() < 0 or self.split_idx.max() >= f):
            return f"split pixel index out of range 0..{f - 1}"
        if self.anchor_idx.min() < 0 or self.anchor_idx.max() >= p:
            return f"anchor index out of range 0..{p - 1}"
        return None

    @property
    def num_parts(self) -> int:
        return int(self.initial_shape.shape[0])


# ------------------------------------------------------------------------------------------------
# reading the .dat


class _SpReader(_Reader):
    """dlib_dat's primitive reader, with errors that say which kind of file was expected."""

    def error(self, what: str) -> ModelUnavailable:
        return ModelUnavailable(
            f"{self.path}: not a valid dlib shape-predictor file: {what} "
            f"(at byte offset {self.pos} of {len(self.data)})"
        )

    def size(self, what: str, min_bytes_each: int) -> int:
        """A ``std::vector`` length, refused when the rest of the file cannot hold it.

        The bound keeps a corrupt length from allocating gigabytes before failing.
        """
        n = self.uint(f"size of {what}")
        if n * min_bytes_each > len(self.data) - self.pos:
            raise self.error(f"{what} claims {n} elements, more than the file holds (truncated?)")
        return n

    def column(self, what: str) -> np.ndarray:
        """A ``matrix<float,0,1>`` -> float32 (nr,)."""
        nr = self.int_(f"nr of {what}")
        nc = self.int_(f"nc of {what}")
        if nr < 0 or nc < 0:
            nr, nc = -nr, -nc
        else:
            nr, nc = nc, nr  # pre-2013 layout: the two sizes were written the other way round
        if nc != 1 and nr * nc != 0:
            raise self.error(f"{what} is a {nr}x{nc} matrix, expected a column vector")
        if nr * 2 > len(self.data) - self.pos:
            raise self.error(f"{what} claims {nr} elements, more than the file holds (truncated?)")
        return np.array([self.float_(what) for _ in range(nr * nc)], dtype=np.float32)


def parse_shape_predictor_dat(path: str | os.PathLike[str]) -> ShapePredictorModel:
    """Parse a dlib ``shape_predictor`` ``.dat`` file (any part count; the 5-point one ships).

    Raises ModelUnavailable naming the file (and byte offset) on anything unexpected,
    including a truncated file, trailing bytes, or trees the vectorised predictor cannot run.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise ModelUnavailable(f"{p}: cannot read dlib shape-predictor file: {e.strerror or e}") from e
    r = _SpReader(data, p)
    r.version("shape_predictor", (1,))
    initial = r.column("initial_shape")
    if initial.size == 0 or initial.size % 2:
        raise r.error(f"initial_shape has {initial.size} values, expected a positive even count")
    n_parts = initial.size // 2

    n_cascades = r.size("forests", 1)
    splits: list[list[tuple[int, int, float]]] = []  # one flat list per cascade
    leaves: list[list[np.ndarray]] = []
    n_trees = n_splits = -1
    for c in range(n_cascades):
        nt = r.size(f"forest {c}", 2)
        if n_trees not in (-1, nt):
            raise r.error(f"forest {c} has {nt} trees, earlier ones {n_trees} (unsupported)")
        n_trees = nt
        c_splits: list[tuple[int, int, float]] = []
        c_leaves: list[np.ndarray] = []
        for t in range(nt):
            ns = r.size(f"splits of tree {t} of forest {c}", 4)
            if n_splits not in (-1, ns):
                raise r.error(
                    f"tree {t} of forest {c} has {ns} splits, earlier ones {n_splits} (unsupported)"
                )
            n_splits = ns
            for _ in range(ns):
                c_splits.append((r.uint("split idx1"), r.uint("split idx2"), r.float_("split thresh")))
            nl = r.size(f"leaf_values of tree {t} of forest {c}", 2)
            if nl != ns + 1:
                raise r.error(f"tree {t} of forest {c}: {nl} leaves for {ns} splits, expected {ns + 1}")
            for _ in range(nl):
                leaf = r.column("leaf value")
                if leaf.size != initial.size:
                    raise r.error(
                        f"a leaf of tree {t} of forest {c} has {leaf.size} values, expected {initial.size}"
                    )
                c_leaves.append(leaf)
        splits.append(c_splits)
        leaves.append(c_leaves)

    n_anchor = r.size("anchor_idx", 1)
    if n_anchor != n_cascades:
        raise r.error(f"anchor_idx has {n_anchor} cascades, forests {n_cascades}")
    anchors: list[list[int]] = []
    for c in range(n_anchor):
        anchors.append([r.uint("anchor index") for _ in range(r.size(f"anchor_idx[{c}]", 1))])
    n_deltas = r.size("deltas", 1)
    if n_deltas != n_cascades:
        raise r.error(f"deltas has {n_deltas} cascades, forests {n_cascades}")
    deltas: list[list[tuple[float, float]]] = []
    for c in range(n_deltas):
        n = r.size(f"deltas[{c}]", 4)
        if n != len(anchors[c]) or n != len(anchors[0]):
            raise r.error(
                f"deltas[{c}] has {n} pixels, anchor_idx[{c}] {len(anchors[c])} (or differs by cascade)"
            )
        deltas.append([(r.float_("delta x"), r.float_("delta y")) for _ in range(n)])
    if r.pos != len(data):
        raise r.error(f"{len(data) - r.pos} unexpected trailing bytes after the model")

    c, t, s = n_cascades, max(n_trees, 0), max(n_splits, 0)
    sp = np.array(splits, dtype=np.float64).reshape(c, t, s, 3)
    idx_limit = np.iinfo(np.int32).max
    if sp.size and sp[..., :2].max() > idx_limit:
        raise r.error("split pixel index does not fit in int32")
    model = ShapePredictorModel(
        initial_shape=initial.reshape(n_parts, 2),
        split_idx=sp[..., :2].astype(np.int32),
        split_thresh=sp[..., 2].astype(np.float32),
        leaf_values=np.array(leaves, dtype=np.float32).reshape(c, t, s + 1, n_parts, 2),
        anchor_idx=np.array(anchors, dtype=np.int64).clip(0, idx_limit).astype(np.int32).reshape(c, -1),
        deltas=np.array(deltas, dtype=np.float32).reshape(c, -1, 2),
    )
    problem = model.check()
    if problem is not None:
        raise ModelUnavailable(f"{p}: unusable dlib shape-predictor model: {problem}")
    logger.debug(
        "parsed %s: %d parts, %d cascades x %d trees x %d leaves, %d pixels",
        p,
        n_parts,
        c,
        t,
        s + 1,
        model.anchor_idx.shape[1],
    )
    return model


# ------------------------------------------------------------------------------------------------
# locating the file and caching the parse


def default_shape_predictor_path() -> Path:
    """``shape_predictor_5_face_landmarks.dat`` as shipped by face_recognition_models.

    Found through the package's import spec without importing it (its ``__init__`` imports
    the deprecated ``pkg_resources`` and warns).
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise ModelUnavailable(
            f"{SP5_FILENAME}: the face_recognition_models package is not installed "
            "(pip install face_recognition_models==0.3.0)"
        )
    return Path(spec.origin).parent / "models" / SP5_FILENAME


def default_shape_predictor68_path() -> Path:
    """``shape_predictor_68_face_landmarks.dat`` (~100 MB) as shipped by face_recognition_models."""
    return default_shape_predictor_path().parent / SP68_FILENAME


def _cache_path(cache_dir: Path, sha: str) -> Path:
    return cache_dir / f"dlib_shape_predictor-{sha}-f{CACHE_FORMAT}.npz"


def _read_cache(path: Path) -> ShapePredictorModel | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        first_line = (str(e).splitlines() or [""])[0][:200]
        logger.warning(
            "shape-predictor cache %s is unreadable (%s: %s); rebuilding it",
            path,
            type(e).__name__,
            first_line,
        )
        return None
    if set(arrays) != set(_ARRAY_SPECS):
        logger.warning(
            "shape-predictor cache %s holds %s, not the expected arrays; rebuilding it", path, sorted(arrays)
        )
        return None
    model = ShapePredictorModel(**arrays)
    problem = model.check()
    if problem is not None:
        logger.warning("shape-predictor cache %s is inconsistent (%s); rebuilding it", path, problem)
        return None
    return model


def _write_cache(path: Path, model: ShapePredictorModel) -> bool:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # through the open file: np.savez would append ".npz" to a bare temp name
        savez: Callable[..., None] = np.savez  # its stub cannot take **arrays
        with replacing(path, mode=0o600) as tmp, tmp.open("wb") as f:
            savez(f, **model.arrays())
    except OSError as e:
        logger.warning("cannot write shape-predictor cache %s (%s); continuing without it", path, e)
        return False
    return True


@dataclass(frozen=True)
class LoadedShapePredictor:
    """A parsed model plus where it came from."""

    model: ShapePredictorModel
    sha256: str
    dat_path: Path
    cache_path: Path | None
    from_cache: bool


def load_shape_predictor(
    dat_path: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    use_cache: bool = True,
) -> LoadedShapePredictor:
    """The parsed model, from ``<cache_dir>`` (default ``$FACESTREAM_CACHE_DIR/weights``) when it
    holds this file's parse, else parsed from ``dat_path`` (default: the shipped 5-point file).

    The cache name carries the ``.dat``'s sha256, so another file never hits a stale entry; an
    unreadable or inconsistent cache file is rebuilt; an unwritable cache dir is logged and skipped.
    """
    path = Path(dat_path) if dat_path is not None else default_shape_predictor_path()
    c = load_converted(
        path,
        cache_dir,
        use_cache,
        what="dlib shape-predictor model",
        cache_path=_cache_path,
        read=_read_cache,
        write=_write_cache,
        parse=parse_shape_predictor_dat,
    )
    return LoadedShapePredictor(c.value, c.sha256, path, c.cache_path, from_cache=c.from_cache)


# ------------------------------------------------------------------------------------------------
# running it


def boxes_to_rects(boxes: np.ndarray) -> np.ndarray:
    """Float boxes (n, 4) x1, y1, x2, y2 px -> dlib rectangles (n, 4) int64 left, top, right, bottom.

    dlib rectangles are integer; each coordinate is rounded half up (``floor(v + 0.5)``, dlib's
    own float -> integer point rule). Pass the same values to ``dlib.rectangle`` to compare.
    """
    b = np.asarray(boxes, dtype=np.float64)
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"boxes: expected shape (n, 4), got {b.shape}")
    if not np.isfinite(b).all():
        raise ValueError("boxes: non-finite coordinate")
    return np.floor(b + 0.5).astype(np.int64)


def dlib_chip_template(size: int = 150, padding: float = 0.25) -> np.ndarray:
    """Where dlib's ``get_face_chip_details`` puts the 5 shape-predictor points in its chip.

    ``(padding + p) / (2 * padding + 1) * size`` for dlib's mean points ``p`` (
    :data:`DLIB_5PT_MEAN_FACE`). Returns (5, 2) float32 x, y chip px, in the predictor's part
    order (see :class:`ShapePredictor5`), for ``ChipSpec(size, dlib_chip_template(size, padding))``.
    dlib's face-recognition ResNet wants ``size=150, padding=0.25``.

    This is the similarity transform's target. dlib's ``extract_image_chip`` then samples the
    chip so that pixels 0 and size-1 land on the corners of a ``size * scale - 1`` px wide
    rectangle around that transform's centre, so its chips sit ~0.5 px off (and stretched by
    up to size / (size - 1)) relative to a plain warp onto this template.
    """
    if size <= 0 or padding < 0:
        raise ValueError(f"dlib_chip_template: need size > 0 and padding >= 0, got {size}, {padding}")
    return ((padding + DLIB_5PT_MEAN_FACE) / (2 * padding + 1) * size).astype(np.float32)


def mtcnn_face_features(boxes: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Features of MTCNN faces for :data:`DLIB_BOX_FROM_MTCNN`: (n, 12) float64 =
    [1, height / width, the five points' (x, y) relative to the box centre, in box widths].

    ``boxes`` (n, 4) x1, y1, x2, y2 px; ``points`` (n, 5, 2) MTCNN's five points, px.
    """
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    p = np.asarray(points, np.float64).reshape(-1, 5, 2)
    w = np.maximum(b[:, 2] - b[:, 0], 1e-6)
    h = b[:, 3] - b[:, 1]
    c = (b[:, :2] + b[:, 2:]) / 2
    rel = (p - c[:, None, :]) / w[:, None, None]
    return np.column_stack([np.ones(len(b)), h / w, rel.reshape(len(b), 10)])


def dlib_start_boxes(boxes: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Where dlib's face detector would have boxed these MTCNN faces: (n, 4) float32 x1, y1, x2, y2.

    dlib's shape predictors were trained on dlib-detector boxes, which sit lower and tighter on
    the face than MTCNN's; starting the predictor from its own kind of box makes its points
    independent of the detector's box style. The map is linear in
    :func:`mtcnn_face_features`, fitted on shared images outside PAIRS.tsv by
    ``python -m bench.alignment_fit``.
    """
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    if len(b) == 0:
        return np.zeros((0, 4), np.float32)
    from models.dlib_box_map import DLIB_BOX_FROM_MTCNN

    t = mtcnn_face_features(b, points) @ DLIB_BOX_FROM_MTCNN
    w = b[:, 2] - b[:, 0]
    c = (b[:, :2] + b[:, 2:]) / 2 + t[:, :2] * w[:, None]
    half = t[:, 2:] * w[:, None] / 2
    return np.column_stack([c - half, c + half]).astype(np.float32)


class ShapePredictor5:
    """dlib's 5-point face landmarker, numpy only, vectorised over faces and trees.

    Parts, in dlib's output order (left/right as seen in the image, i.e. for a frontal face
    parts 0 and 1 are on the subject's left eye):

    0. outer corner of the image-right eye
    1. inner corner of the image-right eye
    2. outer corner of the image-left eye
    3. inner corner of the image-left eye
    4. base of the nose (just under the tip, between the nostrils)

    ``predict`` keeps no state between calls, so one instance can serve several threads.
    """

    #: up to this many faces the split tests of every node are evaluated at once (fewer numpy
    #: calls); above it, only the nodes on each face's path (less work per face)
    ALL_SPLITS_MAX_FACES = 2

    def __init__(
        self,
        dat_path: str | os.PathLike[str] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        *,
        model: ShapePredictorModel | None = None,
    ) -> None:
        if model is None:
            model = load_shape_predictor(dat_path, cache_dir).model
        problem = model.check()
        if problem is not None:
            raise ModelUnavailable(f"unusable shape-predictor model: {problem}")
        self.model = model
        c, t, s, _ = model.split_idx.shape
        p = model.num_parts
        self._cascades, self._trees, self._splits = c, t, s
        self._leaves = s + 1
        self._depth = self._leaves.bit_length() - 1
        self._features = int(model.anchor_idx.shape[1])
        # Flat per-cascade tables: split (tree, node) is at tree * S + node, leaf (tree, j) at
        # tree * L + j, so one ``take`` fetches a node of every tree.
        self._idx1 = np.ascontiguousarray(model.split_idx[..., 0].reshape(c, t * s), dtype=np.intp)
        self._idx2 = np.ascontiguousarray(model.split_idx[..., 1].reshape(c, t * s), dtype=np.intp)
        self._thresh = np.ascontiguousarray(model.split_thresh.reshape(c, t * s))
        self._leaf = np.ascontiguousarray(model.leaf_values.reshape(c, t * self._leaves, 2 * p))
        self._tree_split0 = np.arange(t, dtype=np.intp) * s
        self._tree_leaf0 = np.arange(t, dtype=np.intp) * self._leaves - s
        # x / y of each feature pixel's anchor part in a flattened (x0, y0, x1, ...) shape
        self._anchor_x = (2 * model.anchor_idx).astype(np.intp)
        self._anchor_y = self._anchor_x + 1
        self._dx = np.ascontiguousarray(model.deltas[..., 0])
        self._dy = np.ascontiguousarray(model.deltas[..., 1])
        self._init = model.initial_shape.reshape(-1)
        # find_tform_between_shapes(initial, current) is a least-squares similarity from the
        # fixed initial shape; its two parameters are dot products of the centred current shape
        # with these weights (see _similarity).
        init64 = model.initial_shape.astype(np.float64)
        ic = init64 - init64.mean(axis=0)
        sigma = float((ic**2).sum(axis=1).mean())
        norm = p * (sigma if sigma != 0 else 1.0)  # dlib: scale 1 for a zero-variance shape
        self._wa = (ic / norm).reshape(-1)  # a = sum(x'·ix + y'·iy) / (P sigma)
        self._wb = (np.stack([-ic[:, 1], ic[:, 0]], axis=1) / norm).reshape(
            -1
        )  # b = sum(y'·ix - x'·iy) / (P sigma)

    @property
    def num_parts(self) -> int:
        return self.model.num_parts

    def _similarity(self, shape: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """dlib's ``find_tform_between_shapes(initial_shape, shape).get_m()``, cast to float.

        ``shape`` (n, 2P) float32 -> (a, b), each (n, 1) float32, of the matrix [[a, -b], [b, a]].
        dlib runs Umeyama (an SVD with a reflection fix) in double; for 2-D points that equals
        the closed-form least-squares rotation + scale computed here, up to double rounding.
        """
        n, p2 = shape.shape
        cur = shape.astype(np.float64).reshape(n, p2 // 2, 2)
        cur = (cur - cur.mean(axis=1, keepdims=True)).reshape(n, p2)
        a = (cur @ self._wa).astype(np.float32)[:, None]
        b = (cur @ self._wb).astype(np.float32)[:, None]
        return a, b

    def _pixel_features(
        self, c: int, shape: np.ndarray, pixels: np.ndarray, h: int, w: int, rect_f64: np.ndarray
    ) -> np.ndarray:
        """dlib's ``extract_feature_pixel_values`` for cascade ``c``: (n, F) float32 intensities."""
        a, b = self._similarity(shape)
        dx, dy = self._dx[c], self._dy[c]
        # tform * delta + location(current_shape, anchor), in float32 and in dlib's order:
        # each row of the 2x2 product is m(r,0)*dx + m(r,1)*dy, then the anchor is added.
        fx = (a * dx - b * dy) + shape.take(self._anchor_x[c], axis=1)
        fy = (b * dx + a * dy) + shape.take(self._anchor_y[c], axis=1)
        left, top, sx, sy = rect_f64
        # tform_to_img maps in double; dlib's vector -> point conversion is floor(v + 0.5).
        # (dlib's tform comes from a pinv, so its last-ulp rounding is not reproducible anyway;
        # folding the 0.5 into the offset saves a pass.)
        px = np.floor(fx.astype(np.float64) * sx + (left + 0.5)).astype(np.intp)
        py = np.floor(fy.astype(np.float64) * sy + (top + 0.5)).astype(np.intp)
        inside = (px >= 0) & (px < w) & (py >= 0) & (py < h)
        rgb = np.take(pixels, np.where(inside, py * w + px, 0), axis=0).astype(np.int32)
        # get_pixel_intensity(rgb_pixel) = (r + g + b) / 3 in unsigned int; outside the image 0
        gray = (rgb[..., 0] + rgb[..., 1] + rgb[..., 2]) // 3
        return np.where(inside, gray, 0).astype(np.float32)

    def _leaf_index(self, c: int, feat: np.ndarray) -> np.ndarray:
        """Flat leaf index (n, T) of every tree of cascade ``c`` for features (n, F) float32.

        Per dlib's ``regression_tree``: from node 0, go to 2i+1 if
        ``feat[idx1] - feat[idx2] > thresh`` (float32) else to 2i+2; leaf = i - S.
        """
        n = feat.shape[0]
        idx1, idx2, thresh = self._idx1[c], self._idx2[c], self._thresh[c]
        local = np.zeros((n, self._trees), dtype=np.intp)
        if n <= self.ALL_SPLITS_MAX_FACES:
            go_left = (feat.take(idx1, axis=1) - feat.take(idx2, axis=1) > thresh).ravel()
            offset = np.arange(n, dtype=np.intp)[:, None] * idx1.size + self._tree_split0
            for _ in range(self._depth):
                local = 2 * local + 2 - go_left.take(local + offset)
        else:
            flat = feat.ravel()
            row = np.arange(n, dtype=np.intp)[:, None] * self._features
            for _ in range(self._depth):
                k = local + self._tree_split0
                go = flat.take(idx1.take(k) + row) - flat.take(idx2.take(k) + row) > thresh.take(k)
                local = 2 * local + 2 - go
        return local + self._tree_leaf0

    def predict(self, rgb: np.ndarray, boxes: np.ndarray, *, round_to_pixel: bool = True) -> np.ndarray:
        """Landmarks of the faces in ``boxes``, as dlib's ``shape_predictor(rgb, rect)`` gives them.

        ``rgb`` (H, W, 3) uint8; ``boxes`` (n, 4) float x1, y1, x2, y2 px, rounded to dlib's
        integer rectangles by :func:`boxes_to_rects`. Returns (n, P, 2) float32 x, y px in the
        part order of the class docstring. dlib returns integer ``point``s (``floor(v + 0.5)``);
        ``round_to_pixel=False`` returns the same positions before that rounding.
        """
        if not (
            isinstance(rgb, np.ndarray) and rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.dtype == np.uint8
        ):
            got = f"{rgb.shape} {rgb.dtype}" if isinstance(rgb, np.ndarray) else type(rgb).__name__
            raise ValueError(f"rgb: expected an (H, W, 3) uint8 array, got {got}")
        rects = boxes_to_rects(boxes)
        n, p = rects.shape[0], self.num_parts
        if n == 0:
            return np.zeros((0, p, 2), dtype=np.float32)
        h, w = rgb.shape[:2]
        pixels = np.ascontiguousarray(rgb).reshape(-1, 3)
        # unnormalizing_tform maps (0,0) -> top-left, (1,0) -> top-right, (1,1) -> bottom-right:
        # x * (right - left) + left. (A dlib rectangle is right - left + 1 px wide, but the
        # transform spans corner to corner.) Columns (n, 1) float64: left, top, sx, sy.
        r64 = rects.astype(np.float64)
        rect_f64 = np.stack([r64[:, 0], r64[:, 1], r64[:, 2] - r64[:, 0], r64[:, 3] - r64[:, 1]])[:, :, None]

        shape = np.tile(self._init, (n, 1))  # (n, 2P) float32, dlib's current_shape
        for c in range(self._cascades):
            feat = self._pixel_features(c, shape, pixels, h, w, rect_f64)
            leaf_rows = self._leaf[c].take(self._leaf_index(c, feat).T, axis=0)  # (T, n, 2P)
            # dlib adds the trees' leaves to current_shape one at a time, in float32. A
            # reduction over the leading axis of a C-ordered array does exactly that (numpy's
            # pairwise summation is only used along the innermost axis).
            stacked = np.concatenate([shape[None], leaf_rows], axis=0)
            shape = np.add.reduce(stacked, axis=0, dtype=np.float32)

        left, top, sx, sy = rect_f64
        out = np.empty((n, p, 2), dtype=np.float64)
        out[..., 0] = shape[:, 0::2].astype(np.float64) * sx + left
        out[..., 1] = shape[:, 1::2].astype(np.float64) * sy + top
        if round_to_pixel:
            out = np.floor(out + 0.5)
        return out.astype(np.float32)


# ------------------------------------------------------------------------------------------------
# Rekognition's landmark types from the 68 points

#: Rekognition landmark type -> the iBUG 68-point indices averaged for it. "Left" / "right" are
#: as seen in the image (the same convention as the five DEFAULT landmarks); iBUG numbers the
#: jaw from the image-left ear (0) over the chin (8), brows and eyes image-left first, the eye
#: contours clockwise from the outer corner (36 / 42 the image-left corner of each eye). The
#: pupils are the eye contours' centres (no iris model here).
REKOGNITION_FROM_68: dict[str, tuple[int, ...]] = {
    "eyeLeft": (36, 37, 38, 39, 40, 41),
    "eyeRight": (42, 43, 44, 45, 46, 47),
    "nose": (30,),
    "mouthLeft": (48,),
    "mouthRight": (54,),
    "leftEyeBrowLeft": (17,),
    "leftEyeBrowRight": (21,),
    "leftEyeBrowUp": (19,),
    "rightEyeBrowLeft": (22,),
    "rightEyeBrowRight": (26,),
    "rightEyeBrowUp": (24,),
    "leftEyeLeft": (36,),
    "leftEyeRight": (39,),
    "leftEyeUp": (37, 38),
    "leftEyeDown": (40, 41),
    "rightEyeLeft": (42,),
    "rightEyeRight": (45,),
    "rightEyeUp": (43, 44),
    "rightEyeDown": (46, 47),
    "noseLeft": (31,),
    "noseRight": (35,),
    "mouthUp": (51,),
    "mouthDown": (57,),
    "leftPupil": (36, 37, 38, 39, 40, 41),
    "rightPupil": (42, 43, 44, 45, 46, 47),
    "upperJawlineLeft": (0,),
    "midJawlineLeft": (4,),
    "chinBottom": (8,),
    "midJawlineRight": (12,),
    "upperJawlineRight": (16,),
}


def rekognition_landmarks(points68: np.ndarray) -> tuple[tuple[str, ...], np.ndarray]:
    """(types, (n, T, 2) float32 px) of Rekognition's ``ALL`` landmarks from (n, 68, 2) points;
    ``types`` is :data:`facestream.types.ALL_LANDMARK_TYPES`."""
    p = np.asarray(points68, np.float64)
    if p.ndim != 3 or p.shape[1:] != (68, 2):
        raise ValueError(f"points68: expected shape (n, 68, 2), got {p.shape}")
    types = ALL_LANDMARK_TYPES
    out = np.stack([p[:, list(REKOGNITION_FROM_68[t])].mean(axis=1) for t in types], axis=1)
    return types, out.astype(np.float32)


__all__ = [
    "DLIB_5PT_MEAN_FACE",
    "REKOGNITION_FROM_68",
    "SP5_FILENAME",
    "SP68_FILENAME",
    "LoadedShapePredictor",
    "ShapePredictor5",
    "ShapePredictorModel",
    "boxes_to_rects",
    "default_shape_predictor68_path",
    "default_shape_predictor_path",
    "dlib_chip_template",
    "dlib_start_boxes",
    "load_shape_predictor",
    "mtcnn_face_features",
    "parse_shape_predictor_dat",
    "rekognition_landmarks",
]
