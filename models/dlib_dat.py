"""Read dlib's face-recognition ResNet weights straight from its own ``.dat`` file.

No dlib needed at run time: this is a reader of dlib's serialization format (``dlib/serialize.h``,
``dlib/dnn/core.h``, ``dlib/dnn/layers.h``, ``dlib/dnn/tensor.h``, ``dlib/dnn/input.h``), driven by
the network's architecture so that every value read is checked against what that architecture
says must be there. Anything unexpected raises :class:`facestream.errors.ModelUnavailable` naming
the file and the byte offset.

Format notes (what the file actually holds):

- Integers are dlib "packed" ints: a control byte (low 4 bits: byte count, bit 0x80: negative
  for signed types) then that many little-endian magnitude bytes.
- ``float``/``double`` scalars are ``float_details``: a packed int64 mantissa and a packed int16
  exponent, value ``mantissa * 2**exponent`` (exponents 32000/32001/32002 mean inf/-inf/NaN).
- ``bool`` is one ASCII byte, ``'0'`` or ``'1'``; strings are a packed length then bytes.
- A tensor is: version (1 = every value a ``float_details``, 2 = raw little-endian float32),
  then num_samples, k, nr, nc, then the values.
- Networks serialize outside-in: ``add_loss_layer`` writes its version and the loss details
  first, then each wrapping layer writes only its version and recurses into its subnetwork,
  so the file holds a run of version numbers down to the input layer, and the layer details
  then come back out inside-out (input layer first, fc last). ``add_tag_layer`` and
  ``add_skip_layer`` write nothing but their version; the tag ids are not in the file at all,
  so the reader has to know the architecture.
- After each layer's details ``add_layer`` writes its bookkeeping: three bools and two or three
  tensors (gradient buffers and the cached output; all empty in the shipped file).

The converted weights are cached as a torch state_dict keyed by the ``.dat``'s sha256; see
:func:`load_dlib_resnet_weights`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import math
import os
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np
import torch

from facestream.atomic import replacing
from facestream.errors import ModelUnavailable

T = TypeVar("T")

logger = logging.getLogger(__name__)

DAT_FILENAME = "dlib_face_recognition_resnet_model_v1.dat"
#: Bumped when the cached state_dict's layout changes; part of the cache file name.
CACHE_FORMAT = 1
#: dlib's ``input_rgb_image`` defaults; the file carries its own values, checked against these.
DLIB_AVG_RGB = (122.782, 117.001, 104.298)
INPUT_SIZE = 150
EMBEDDING_DIM = 128

# dlib enums (layers_abstract.h): layer_mode {CONV_MODE = 0, FC_MODE = 1};
# fc_bias_mode {FC_HAS_BIAS = 0, FC_NO_BIAS = 1}.
_CONV_MODE = 0
_FC_NO_BIAS = 1


# ------------------------------------------------------------------------------------------------
# the architecture, innermost (input) layer first


@dataclass(frozen=True)
class LayerSpec:
    """One layer of the network as dlib nests it.

    ``kind`` is one of ``input``, ``con``, ``affine``, ``relu``, ``max_pool``, ``avg_pool``,
    ``add_prev``, ``tag``, ``skip``, ``fc``. ``index`` numbers the ``con``/``affine`` layers
    (0-based, input side first) and names their tensors in the state_dict.
    """

    kind: str
    out_channels: int = 0
    in_channels: int = 0
    size: int = 0  # kernel/window size (square); 0 means "whole input" for pooling
    stride: int = 1
    index: int = -1

    @property
    def padding(self) -> int:
        """dlib's default padding: 0 when stride != 1, else size // 2 (con_, max_pool_, avg_pool_)."""
        return 0 if self.stride != 1 else self.size // 2


@dataclass(frozen=True)
class BlockSpec:
    """One ``ares``/``ares_down`` residual unit: ``in_channels`` -> ``out_channels``."""

    in_channels: int
    out_channels: int
    down: bool


#: alevel4 (3 x 32), alevel3 (down + 3 x 64), alevel2 (down + 2 x 128), alevel1 (down + 2 x 256),
#: alevel0 (down 256), input side first.
RESNET_BLOCKS: tuple[BlockSpec, ...] = (
    BlockSpec(32, 32, False),
    BlockSpec(32, 32, False),
    BlockSpec(32, 32, False),
    BlockSpec(32, 64, True),
    BlockSpec(64, 64, False),
    BlockSpec(64, 64, False),
    BlockSpec(64, 64, False),
    BlockSpec(64, 128, True),
    BlockSpec(128, 128, False),
    BlockSpec(128, 128, False),
    BlockSpec(128, 256, True),
    BlockSpec(256, 256, False),
    BlockSpec(256, 256, False),
    BlockSpec(256, 256, True),
)
STEM_CHANNELS = 32


def architecture() -> list[LayerSpec]:
    """dlib's ``anet_type`` from dnn_face_recognition_ex.cpp, flattened input-first.

    ``block<N,BN,S,SUB> = BN<con<N,3,3,1,1,relu<BN<con<N,3,3,S,S,SUB>>>>>``,
    ``ares<N> = relu<add_prev1<block<N,affine,1,tag1<SUB>>>>``,
    ``ares_down<N> = relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<N,affine,2,tag1<SUB>>>>>>>``,
    under ``loss_metric<fc_no_bias<128,avg_pool_everything<...max_pool<3,3,2,2,relu<affine<
    con<32,7,7,2,2,input_rgb_image_sized<150>>>>>>>>>``.
    """
    layers: list[LayerSpec] = []
    n_conv = 0

    def con(out_c: int, in_c: int, size: int, stride: int) -> None:
        nonlocal n_conv
        layers.append(LayerSpec("con", out_c, in_c, size, stride, index=n_conv))
        layers.append(LayerSpec("affine", out_c, out_c, index=n_conv))
        n_conv += 1

    layers.append(LayerSpec("input", 3))
    con(STEM_CHANNELS, 3, 7, 2)
    layers.append(LayerSpec("relu"))
    layers.append(LayerSpec("max_pool", size=3, stride=2))
    for blk in RESNET_BLOCKS:
        layers.append(LayerSpec("tag"))  # tag1
        con(blk.out_channels, blk.in_channels, 3, 2 if blk.down else 1)
        layers.append(LayerSpec("relu"))
        con(blk.out_channels, blk.out_channels, 3, 1)
        if blk.down:
            layers.append(LayerSpec("tag"))  # tag2
            layers.append(LayerSpec("skip"))  # skip1
            layers.append(LayerSpec("avg_pool", size=2, stride=2))
        layers.append(LayerSpec("add_prev"))
        layers.append(LayerSpec("relu"))
    layers.append(LayerSpec("avg_pool", size=0, stride=1))  # avg_pool_everything
    layers.append(LayerSpec("fc", EMBEDDING_DIM, RESNET_BLOCKS[-1].out_channels))
    return layers


def expected_shapes() -> dict[str, tuple[int, ...]]:
    """The state_dict :func:`parse_dlib_resnet_dat` returns: name -> shape (all float32)."""
    shapes: dict[str, tuple[int, ...]] = {"input.avg_rgb": (3,)}
    for spec in architecture():
        if spec.kind == "con":
            shapes[f"con{spec.index}.weight"] = (spec.out_channels, spec.in_channels, spec.size, spec.size)
            shapes[f"con{spec.index}.bias"] = (spec.out_channels,)
        elif spec.kind == "affine":
            shapes[f"affine{spec.index}.gamma"] = (spec.out_channels,)
            shapes[f"affine{spec.index}.beta"] = (spec.out_channels,)
        elif spec.kind == "fc":
            shapes["fc.weight"] = (spec.out_channels, spec.in_channels)
    return shapes


# ------------------------------------------------------------------------------------------------
# primitive reader


class _Reader:
    """Cursor over the bytes of one dlib-serialized file."""

    def __init__(self, data: bytes, path: Path) -> None:
        self.data = data
        self.path = path
        self.pos = 0

    def error(self, what: str) -> ModelUnavailable:
        return ModelUnavailable(
            f"{self.path}: not a valid dlib face-recognition ResNet file: {what} "
            f"(at byte offset {self.pos} of {len(self.data)})"
        )

    def _take(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.data):
            raise self.error(f"file ends while reading {what} (truncated?)")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def _packed(self, what: str, signed: bool, max_bytes: int) -> int:
        ctrl = self._take(1, what)[0]
        # unpack_int: signed types use bit 0x80 as the sign and the low nibble as the size;
        # unsigned types mask with 0x8F so a set sign bit is an error.
        size = ctrl & 0x0F if signed else ctrl & 0x8F
        if size == 0 or size > max_bytes:
            raise self.error(f"bad packed-integer control byte 0x{ctrl:02x} for {what}")
        value = int.from_bytes(self._take(size, what), "little")
        if signed and ctrl & 0x80:
            value = -value
        return value

    def int_(self, what: str, max_bytes: int = 8) -> int:
        """A signed integer (``int``/``long``/``int64``/``int16``)."""
        return self._packed(what, signed=True, max_bytes=max_bytes)

    def uint(self, what: str, max_bytes: int = 8) -> int:
        """An unsigned integer (``unsigned long``/``size_t``/``unsigned int``)."""
        return self._packed(what, signed=False, max_bytes=max_bytes)

    def string(self, what: str) -> str:
        n = self.uint(f"length of {what}")
        if n > 256:
            raise self.error(f"implausible string length {n} for {what}")
        raw = self._take(n, what)
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise self.error(f"non-ASCII bytes in {what}: {raw!r}") from None

    def expect_string(self, expected: str, what: str) -> None:
        start = self.pos
        got = self.string(what)
        if got != expected:
            self.pos = start
            raise self.error(f"expected {what} {expected!r}, found {got!r}")

    def bool_(self, what: str) -> bool:
        ch = self._take(1, what)
        if ch not in (b"0", b"1"):
            raise self.error(f"expected a bool ('0' or '1') for {what}, found {ch!r}")
        return ch == b"1"

    def float_(self, what: str) -> float:
        """dlib ``float_details``: packed int64 mantissa, packed int16 exponent."""
        if self.pos < len(self.data) and self.data[self.pos] & 0x70:
            # deserialize_floating_point's test for the pre-2013 ASCII format
            raise self.error(f"{what} uses dlib's old ASCII float format, which is not supported")
        mantissa = self.int_(f"mantissa of {what}", max_bytes=8)
        exponent = self.int_(f"exponent of {what}", max_bytes=2)
        if exponent == 32000:
            return math.inf
        if exponent == 32001:
            return -math.inf
        if exponent == 32002:
            return math.nan
        return math.ldexp(mantissa, exponent)

    def version(self, what: str, allowed: tuple[int, ...]) -> int:
        start = self.pos
        v = self.int_(f"version of {what}", max_bytes=4)
        if v not in allowed:
            self.pos = start
            raise self.error(f"unsupported {what} version {v} (this reader knows {allowed})")
        return v

    def dims(self, what: str) -> tuple[int, int, int, int]:
        n = self.int_(f"num_samples of {what}")
        k = self.int_(f"k of {what}")
        nr = self.int_(f"nr of {what}")
        nc = self.int_(f"nc of {what}")
        if min(n, k, nr, nc) < 0:
            raise self.error(f"negative dimension in {what}: {(n, k, nr, nc)}")
        return n, k, nr, nc

    def tensor(self, what: str) -> np.ndarray:
        """A ``resizable_tensor`` -> float32 array of shape (num_samples, k, nr, nc)."""
        v = self.version(what, (1, 2))
        shape = self.dims(what)
        count = shape[0] * shape[1] * shape[2] * shape[3]
        if v == 2:
            raw = self._take(4 * count, f"{count} float32 values of {what}")
            arr = np.frombuffer(raw, dtype="<f4").astype(np.float32)
        else:
            arr = np.array([self.float_(f"{what}[{i}]") for i in range(count)], dtype=np.float32)
        return arr.reshape(shape)

    def alias_tensor(self, what: str) -> tuple[int, int, int, int]:
        self.version(what, (1,))
        return self.dims(what)


# ------------------------------------------------------------------------------------------------
# layer details


def _read_con(r: _Reader, spec: LayerSpec, out: dict[str, np.ndarray]) -> None:
    shape = f"{spec.out_channels},{spec.size},{spec.size},{spec.stride},{spec.stride}"
    name = f"con{spec.index} (con_<{shape}>)"
    r.expect_string("con_4", f"tag of {name}")
    params = r.tensor(f"params of {name}")
    got = (
        r.int_(f"num_filters of {name}"),
        r.int_(f"nr of {name}"),
        r.int_(f"nc of {name}"),
        r.int_(f"stride_y of {name}"),
        r.int_(f"stride_x of {name}"),
        r.int_(f"padding_y of {name}"),
        r.int_(f"padding_x of {name}"),
    )
    want = (spec.out_channels, spec.size, spec.size, spec.stride, spec.stride, spec.padding, spec.padding)
    if got != want:
        raise r.error(f"{name}: (filters, nr, nc, stride_y, stride_x, pad_y, pad_x) = {got}, expected {want}")
    w_shape = (spec.out_channels, spec.in_channels, spec.size, spec.size)
    filters = r.alias_tensor(f"filters of {name}")
    biases = r.alias_tensor(f"biases of {name}")
    if filters != w_shape or biases != (1, spec.out_channels, 1, 1):
        raise r.error(
            f"{name}: filters {filters} / biases {biases}, "
            f"expected {w_shape} / (1, {spec.out_channels}, 1, 1)"
        )
    n_w = int(np.prod(w_shape))
    if params.size != n_w + spec.out_channels:
        raise r.error(
            f"{name}: {params.size} parameters, expected {n_w} weights + {spec.out_channels} biases"
        )
    for mult in ("learning_rate", "weight_decay", "bias_learning_rate", "bias_weight_decay"):
        r.float_(f"{mult}_multiplier of {name}")
    flat = params.reshape(-1)
    out[f"con{spec.index}.weight"] = flat[:n_w].reshape(w_shape).copy()
    out[f"con{spec.index}.bias"] = flat[n_w:].copy()


def _read_affine(r: _Reader, spec: LayerSpec, out: dict[str, np.ndarray]) -> None:
    name = f"affine{spec.index}"
    r.expect_string("affine_", f"tag of {name}")
    params = r.tensor(f"params of {name}")
    c = spec.out_channels
    gamma = r.alias_tensor(f"gamma of {name}")
    beta = r.alias_tensor(f"beta of {name}")
    mode = r.int_(f"mode of {name}")
    if gamma != (1, c, 1, 1) or beta != (1, c, 1, 1) or params.size != 2 * c or mode != _CONV_MODE:
        raise r.error(
            f"{name}: gamma {gamma}, beta {beta}, {params.size} params, mode {mode}; "
            f"expected (1, {c}, 1, 1) twice, {2 * c} params, CONV_MODE ({_CONV_MODE})"
        )
    flat = params.reshape(-1)
    out[f"affine{spec.index}.gamma"] = flat[:c].copy()
    out[f"affine{spec.index}.beta"] = flat[c:].copy()


def _read_pool(r: _Reader, spec: LayerSpec, kind: str) -> None:
    name = f"{kind} {spec.size}x{spec.size}/{spec.stride}" if spec.size else f"{kind}_everything"
    r.expect_string(f"{kind}_2", f"tag of {name}")
    got = (
        r.int_(f"nr of {name}"),
        r.int_(f"nc of {name}"),
        r.int_(f"stride_y of {name}"),
        r.int_(f"stride_x of {name}"),
        r.int_(f"padding_y of {name}"),
        r.int_(f"padding_x of {name}"),
    )
    want = (spec.size, spec.size, spec.stride, spec.stride, spec.padding, spec.padding)
    if got != want:
        raise r.error(f"{name}: (nr, nc, stride_y, stride_x, pad_y, pad_x) = {got}, expected {want}")


def _read_fc(r: _Reader, spec: LayerSpec, out: dict[str, np.ndarray]) -> None:
    name = f"fc_no_bias<{spec.out_channels}>"
    r.expect_string("fc_2", f"tag of {name}")
    num_outputs = r.uint(f"num_outputs of {name}")
    num_inputs = r.uint(f"num_inputs of {name}")
    if (num_outputs, num_inputs) != (spec.out_channels, spec.in_channels):
        raise r.error(
            f"{name}: {num_inputs} -> {num_outputs}, expected {spec.in_channels} -> {spec.out_channels}"
        )
    params = r.tensor(f"params of {name}")
    weights = r.alias_tensor(f"weights of {name}")
    r.alias_tensor(f"biases of {name}")  # unused (default-constructed) without a bias
    bias_mode = r.int_(f"bias_mode of {name}")
    if weights != (num_inputs, num_outputs, 1, 1) or params.size != num_inputs * num_outputs:
        raise r.error(
            f"{name}: weights {weights}, {params.size} params; expected ({num_inputs}, {num_outputs}, 1, 1)"
        )
    if bias_mode != _FC_NO_BIAS:
        raise r.error(f"{name}: bias_mode {bias_mode}, expected FC_NO_BIAS ({_FC_NO_BIAS})")
    for mult in ("learning_rate", "weight_decay", "bias_learning_rate", "bias_weight_decay"):
        r.float_(f"{mult}_multiplier of {name}")
    # dlib computes output = input (n x num_inputs) * W (num_inputs x num_outputs): torch wants W^T.
    out["fc.weight"] = params.reshape(num_inputs, num_outputs).T.copy()


def _read_input(r: _Reader, out: dict[str, np.ndarray]) -> None:
    r.expect_string("input_rgb_image_sized", "input layer tag")
    avg = [r.float_(f"avg_{c}") for c in ("red", "green", "blue")]
    nr = r.uint("input NR")
    nc = r.uint("input NC")
    if (nr, nc) != (INPUT_SIZE, INPUT_SIZE):
        raise r.error(f"input layer is {nr}x{nc}, expected {INPUT_SIZE}x{INPUT_SIZE}")
    if not np.allclose(avg, DLIB_AVG_RGB, atol=1e-3):
        raise r.error(f"input layer mean RGB {avg}, expected {DLIB_AVG_RGB}")
    out["input.avg_rgb"] = np.asarray(avg, dtype=np.float32)


def _read_details(r: _Reader, spec: LayerSpec, out: dict[str, np.ndarray]) -> None:
    if spec.kind == "con":
        _read_con(r, spec, out)
    elif spec.kind == "affine":
        _read_affine(r, spec, out)
    elif spec.kind == "relu":
        r.expect_string("relu_", "tag of relu")
    elif spec.kind == "add_prev":
        r.expect_string("add_prev_", "tag of add_prev")
    elif spec.kind in ("max_pool", "avg_pool"):
        _read_pool(r, spec, spec.kind)
    elif spec.kind == "fc":
        _read_fc(r, spec, out)
    else:  # pragma: no cover - architecture() only makes the kinds above
        raise AssertionError(spec.kind)


_ADD_LAYER_FLAGS = (
    "this_layer_setup_called",
    "gradient_input_is_stale",
    "get_output_and_gradient_input_disabled",
)


def _read_add_layer_state(r: _Reader, what: str, n_tensors: int) -> None:
    """add_layer's bookkeeping after the details: 3 bools, then gradient/output buffers."""
    for flag in _ADD_LAYER_FLAGS:
        r.bool_(f"{flag} of {what}")
    for i in range(n_tensors):
        r.tensor(f"buffer {i} of {what}")


def parse_dlib_resnet_dat(path: str | os.PathLike[str]) -> OrderedDict[str, np.ndarray]:
    """Parse dlib_face_recognition_resnet_model_v1.dat.

    Returns an ordered name -> float32 array map (input side first), shapes as in
    :func:`expected_shapes`: ``con{i}.weight`` (out, in, kh, kw), ``con{i}.bias`` (out,),
    ``affine{i}.gamma`` / ``affine{i}.beta`` (C,), ``fc.weight`` (128, 256) (torch's
    (out, in) layout), ``input.avg_rgb`` (3,). Raises ModelUnavailable naming the file on
    anything unexpected, including trailing bytes.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise ModelUnavailable(f"{p}: cannot read dlib model file: {e.strerror or e}") from e
    r = _Reader(data, p)
    layers = architecture()

    r.version("add_loss_layer", (1,))
    r.expect_string("loss_metric_2", "loss layer tag")
    r.float_("loss margin")
    r.float_("loss dist_thresh")

    # outside-in: the version of each wrapper, down to the layer that holds the input layer
    add_layer_versions: list[int] = []  # outermost first, one per non-input layer
    for spec in reversed(layers[1:]):
        if spec.kind in ("tag", "skip"):
            r.version(f"add_{spec.kind}_layer", (1,))
            add_layer_versions.append(0)
        elif spec is layers[1]:
            add_layer_versions.append(r.version("add_layer over the input layer", (2, 3)))
        else:
            add_layer_versions.append(r.version(f"add_layer ({spec.kind})", (2,)))

    out: OrderedDict[str, np.ndarray] = OrderedDict()
    _read_input(r, out)
    # inside-out: details + bookkeeping, input side first
    for spec, v in zip(layers[1:], reversed(add_layer_versions), strict=True):
        if spec.kind in ("tag", "skip"):
            continue
        _read_details(r, spec, out)
        if spec is layers[1]:
            _read_add_layer_state(r, "the first add_layer", 3)
            if v >= 3:
                r.uint("_sample_expansion_factor", max_bytes=4)
        else:
            _read_add_layer_state(r, f"add_layer ({spec.kind})", 3)
    if r.pos != len(data):
        raise r.error(f"{len(data) - r.pos} unexpected trailing bytes after the network")

    want = expected_shapes()
    got = {k: tuple(v.shape) for k, v in out.items()}
    if got != want:  # pragma: no cover - the per-layer checks above should make this impossible
        raise ModelUnavailable(f"{p}: parsed tensors do not match the architecture: {got} vs {want}")
    logger.debug("parsed %s: %d tensors, %d floats", p, len(out), sum(v.size for v in out.values()))
    return out


# ------------------------------------------------------------------------------------------------
# locating the file and caching the conversion


def default_dat_path() -> Path:
    """The .dat shipped by the face_recognition_models package.

    Located via the package's import spec, without executing its ``__init__`` (which imports
    the deprecated ``pkg_resources``).
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(
            f"{DAT_FILENAME}: the face_recognition_models package is not installed "
            "(pip install face_recognition_models==0.3.0)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "models" / DAT_FILENAME


def default_cache_dir() -> Path:
    """``$FACESTREAM_CACHE_DIR/weights`` if that variable is set, else ``~/.cache/facestream/weights``."""
    root = os.environ.get("FACESTREAM_CACHE_DIR")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "facestream"
    return base / "weights"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    try:
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except OSError as e:
        raise ModelUnavailable(f"{path}: cannot read dlib model file: {e.strerror or e}") from e
    return h.hexdigest()


@dataclass(frozen=True)
class LoadedWeights:
    """Converted weights: ``tensors`` as in :func:`parse_dlib_resnet_dat`, as float32 torch tensors."""

    tensors: dict[str, torch.Tensor]
    sha256: str
    dat_path: Path
    cache_path: Path | None
    from_cache: bool


def _cache_path(cache_dir: Path, sha: str) -> Path:
    return cache_dir / f"dlib_resnet_v1-{sha}-f{CACHE_FORMAT}.pt"


def _read_cache(path: Path) -> dict[str, torch.Tensor] | None:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # any unpickling/zip error means a corrupt file
        first_line = (str(e).splitlines() or [""])[0][:200]
        logger.warning(
            "weights cache %s is unreadable (%s: %s); rebuilding it", path, type(e).__name__, first_line
        )
        return None
    want = expected_shapes()
    if (
        not isinstance(obj, dict)
        or set(obj) != set(want)
        or any(
            not isinstance(obj[k], torch.Tensor) or tuple(obj[k].shape) != s or obj[k].dtype != torch.float32
            for k, s in want.items()
        )
    ):
        logger.warning("weights cache %s does not hold the expected tensors; rebuilding it", path)
        return None
    return {k: obj[k] for k in want}


def _write_cache(path: Path, tensors: dict[str, torch.Tensor]) -> bool:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with replacing(path, mode=0o600) as tmp:
            torch.save(tensors, tmp)
    except OSError as e:
        logger.warning("cannot write weights cache %s (%s); continuing without it", path, e)
        return False
    return True


@dataclass(frozen=True)
class Converted(Generic[T]):
    """A .dat file's parse, from the sha256-keyed cache or freshly converted."""

    value: T
    sha256: str
    cache_path: Path | None
    from_cache: bool


def load_converted(
    path: Path,
    cache_dir: str | os.PathLike[str] | None,
    use_cache: bool,
    *,
    what: str,
    cache_path: Callable[[Path, str], Path],
    read: Callable[[Path], T | None],
    write: Callable[[Path, T], bool],
    parse: Callable[[Path], T],
) -> Converted[T]:
    """The cache-or-parse policy every dlib model file shares.

    The cache file name carries the ``.dat``'s sha256, so another file never hits a stale entry;
    an unreadable cache file (``read`` returns None) is rebuilt; an unwritable cache dir is
    skipped (``write`` returns False).
    """
    if not path.is_file():
        raise ModelUnavailable(f"{path}: {what} file not found")
    sha = sha256_file(path)
    cpath = cache_path(Path(cache_dir) if cache_dir is not None else default_cache_dir(), sha)
    if use_cache and cpath.is_file():
        cached = read(cpath)
        if cached is not None:
            logger.debug("%s from cache %s", what, cpath)
            return Converted(cached, sha, cpath, from_cache=True)
    value = parse(path)
    written = use_cache and write(cpath, value)
    if written:
        logger.info("converted %s (sha256 %s) into %s", path, sha[:12], cpath)
    return Converted(value, sha, cpath if written else None, from_cache=False)


def load_dlib_resnet_weights(
    dat_path: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    use_cache: bool = True,
) -> LoadedWeights:
    """The network's weights, from the cache if it holds this file's conversion, else parsed.

    The cache file name contains the .dat's sha256, so a different .dat never hits a stale
    conversion. A cache file that fails to load or has the wrong tensors is rebuilt. A cache
    directory that cannot be written is logged and skipped.
    """
    path = Path(dat_path) if dat_path is not None else default_dat_path()

    def parse(p: Path) -> dict[str, torch.Tensor]:
        return {k: torch.from_numpy(v) for k, v in parse_dlib_resnet_dat(p).items()}

    c = load_converted(
        path,
        cache_dir,
        use_cache,
        what="dlib face-recognition model",
        cache_path=_cache_path,
        read=_read_cache,
        write=_write_cache,
        parse=parse,
    )
    return LoadedWeights(c.value, c.sha256, path, c.cache_path, from_cache=c.from_cache)


__all__ = [
    "DAT_FILENAME",
    "DLIB_AVG_RGB",
    "RESNET_BLOCKS",
    "BlockSpec",
    "LayerSpec",
    "LoadedWeights",
    "architecture",
    "default_cache_dir",
    "default_dat_path",
    "expected_shapes",
    "load_dlib_resnet_weights",
    "parse_dlib_resnet_dat",
]
