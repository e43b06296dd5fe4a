"""dlib's face-recognition ResNet (dlib_face_recognition_resnet_model_v1), ported to torch.

The weights come from dlib's own .dat (see :mod:`models.dlib_dat`); dlib itself is not
needed at run time. The network reproduces dlib's semantics exactly:

- input: ``(pixel - avg) / 256`` per channel, avg = (122.782, 117.001, 104.298) RGB (read
  from the file);
- dlib's default padding: 0 for stride-2 convs and pools, ``size // 2`` for stride 1;
  dlib's output size ``1 + (n + 2*pad - size) // stride`` is torch's floor mode;
- ``affine`` (the frozen batch-norm) is a per-channel ``x * gamma + beta``; it always directly
  follows a conv, so it is folded into the conv's weight and bias at load time;
- ``add_prev`` of two tensors of different shape gives a tensor of the larger size in every
  dimension, each input zero-padded at the end (dlib's ``tt::add``). This happens in every
  down-sampling unit: channels (32 -> 64 etc.), and spatially at 150 px input in the two
  256-channel down units (3x3 conv branch vs 4x4 pooled branch, then 1x1 vs 2x2);
- ``avg_pool_everything`` is a mean over the whole (2x2) map; ``fc_no_bias`` a 256 -> 128 matmul.

``raw_descriptor`` is what dlib's ``compute_face_descriptor`` returns (not unit length);
``embed`` L2-normalises it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from facestream.embedders import DlibResNetConfig, EmbedderModelConfig
from facestream.errors import InvalidParameter, ModelUnavailable
from models.device import Placement
from models.dlib_dat import (
    DLIB_AVG_RGB,
    EMBEDDING_DIM,
    RESNET_BLOCKS,
    STEM_CHANNELS,
    BlockSpec,
    expected_shapes,
    load_dlib_resnet_weights,
)
from models.embedders.base import ChipSpec, Embedder, own_config
from models.landmarks import dlib_chip_template

logger = logging.getLogger(__name__)

#: dlib's network expects the chip dlib's ``get_face_chip(img, shape, 150, padding=0.25)`` cuts from
#: its own 5-point shape predictor's landmarks (eye corners, nose base). Aligning from MTCNN's
#: five points instead costs ~1 point of verification accuracy (0.9878 vs 0.9982 on PAIRS.tsv),
#: so the analyzer runs the numpy port of that predictor (models/landmarks.py) on MTCNN's boxes.
DLIB_CHIP = ChipSpec(size=150, template=dlib_chip_template(150, 0.25), landmarks="dlib5")


def _add_prev(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib ``add_prev``: elementwise sum over the max shape, zero-padding each input at the end."""
    if a.shape == b.shape:
        return a + b
    c = max(a.shape[1], b.shape[1])
    h = max(a.shape[2], b.shape[2])
    w = max(a.shape[3], b.shape[3])

    def pad(t: torch.Tensor) -> torch.Tensor:
        return F.pad(t, (0, w - t.shape[3], 0, h - t.shape[2], 0, c - t.shape[1]))

    return pad(a) + pad(b)


def _conv(in_c: int, out_c: int, size: int, stride: int) -> nn.Conv2d:
    padding = 0 if stride != 1 else size // 2
    return nn.Conv2d(in_c, out_c, size, stride=stride, padding=padding, bias=True)


class ResUnit(nn.Module):
    """dlib ``ares<N>`` / ``ares_down<N>`` with each ``affine`` folded into the conv before it.

    (n, in_c, h, w) -> (n, out_c, h', w'), h' = h (plain) or (h - 3) // 2 + 1 (down).
    """

    def __init__(self, spec: BlockSpec) -> None:
        super().__init__()
        self.down = spec.down
        self.conv1 = _conv(spec.in_channels, spec.out_channels, 3, 2 if spec.down else 1)
        self.conv2 = _conv(spec.out_channels, spec.out_channels, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(F.relu(self.conv1(x)))
        skip = F.avg_pool2d(x, 2, 2) if self.down else x
        return F.relu(_add_prev(y, skip))


class DlibResNet(nn.Module):
    """The 29-conv ResNet of dlib_face_recognition_resnet_model_v1.

    ``forward``: (n, 3, 150, 150) float, already in dlib's normalisation ``(rgb - avg) / 256``
    -> (n, 128) float, the raw (un-normalised) descriptor. :meth:`normalize` maps uint8 RGB
    chips to that input.
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("avg_rgb", torch.tensor(DLIB_AVG_RGB, dtype=torch.float32).view(1, 3, 1, 1))
        self.stem = _conv(3, STEM_CHANNELS, 7, 2)
        self.units = nn.ModuleList(ResUnit(s) for s in RESNET_BLOCKS)
        self.fc = nn.Linear(RESNET_BLOCKS[-1].out_channels, EMBEDDING_DIM, bias=False)

    avg_rgb: torch.Tensor

    def normalize(self, chips: torch.Tensor) -> torch.Tensor:
        """uint8 (n, 3, 150, 150) RGB -> float32 ``(chips - avg) / 256`` on the same device."""
        return (chips.float() - self.avg_rgb.to(chips.device)) / 256.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem(x))
        x = F.max_pool2d(x, 3, 2)
        for unit in self.units:
            x = unit(x)
        x = x.mean(dim=(2, 3))  # avg_pool_everything
        return self.fc(x)

    @classmethod
    def from_dlib_tensors(cls, tensors: Mapping[str, torch.Tensor]) -> DlibResNet:
        """Build from the tensors of :func:`~models.dlib_dat.parse_dlib_resnet_dat`.

        Each ``affine`` is folded into its conv: ``W' = W * gamma``, ``b' = b * gamma + beta``
        (computed in float64, stored float32).
        """
        want = expected_shapes()
        bad = {k: tuple(tensors[k].shape) if k in tensors else None for k in want}
        bad = {k: v for k, v in bad.items() if v != want[k]}
        if bad:
            raise ModelUnavailable(f"dlib resnet weights: wrong or missing tensors {bad}")
        net = cls()
        convs: list[nn.Conv2d] = [net.stem]
        for unit in net.units:
            assert isinstance(unit, ResUnit)
            convs += [unit.conv1, unit.conv2]
        with torch.no_grad():
            for i, conv in enumerate(convs):
                g = tensors[f"affine{i}.gamma"].double()
                w = tensors[f"con{i}.weight"].double() * g.view(-1, 1, 1, 1)
                b = tensors[f"con{i}.bias"].double() * g + tensors[f"affine{i}.beta"].double()
                conv.weight.copy_(w.float())
                assert conv.bias is not None
                conv.bias.copy_(b.float())
            net.fc.weight.copy_(tensors["fc.weight"])
            net.avg_rgb.copy_(tensors["input.avg_rgb"].view(1, 3, 1, 1))
        return net.eval()


class DlibResNetEmbedder(Embedder):
    """dlib's face-recognition ResNet as an :class:`Embedder` (``dlib-resnet``, 128-d).

    Placement: ``device`` (default CPU) and ``dtype`` (float32 default; bfloat16/float16 run
    under autocast where the device type supports it, else InvalidParameter), or a
    :class:`~models.device.Placement` instead of both. ``weights_path``: the .dat (default: the
    copy in face_recognition_models); ``cache_dir``: see
    :func:`~models.dlib_dat.load_dlib_resnet_weights`. ``channels_last`` (default: on
    for CPU, where it measured 15-30% faster) sets that memory format on the model and inputs.
    """

    name = DlibResNetConfig.name
    dim = EMBEDDING_DIM
    chip = DLIB_CHIP

    @classmethod
    def from_config(
        cls, config: EmbedderModelConfig, placement: Placement, *, channels_last: bool
    ) -> DlibResNetEmbedder:
        model = own_config(config, DlibResNetConfig)
        return cls(placement=placement, weights_path=model.weights_path, channels_last=channels_last)

    def __init__(
        self,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
        *,
        placement: Placement | None = None,
        weights_path: str | os.PathLike[str] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        channels_last: bool | None = None,
    ) -> None:
        if placement is not None:
            if device is not None or dtype != torch.float32:
                raise InvalidParameter("give either placement or device/dtype, not both")
            device, dtype = placement.device, placement.autocast_dtype or torch.float32
        self._device = torch.device(device) if device is not None else torch.device("cpu")
        if dtype not in (torch.float32, torch.bfloat16, torch.float16):
            raise InvalidParameter(f"dtype: expected float32, bfloat16 or float16, got {dtype}")
        if dtype != torch.float32:
            if not torch.amp.is_autocast_available(self._device.type):
                raise InvalidParameter(f"dtype {dtype}: autocast is not available on device {self._device}")
            try:
                with torch.autocast(self._device.type, dtype=dtype):
                    pass
            except (RuntimeError, ValueError) as e:
                raise InvalidParameter(f"dtype {dtype} is not supported on device {self._device}: {e}") from e
        self.dtype = dtype
        self.channels_last = self._device.type == "cpu" if channels_last is None else channels_last
        loaded = load_dlib_resnet_weights(weights_path, cache_dir)
        self.weights_sha256 = loaded.sha256
        model = DlibResNet.from_dlib_tensors(loaded.tensors).to(self._device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        logger.info(
            "dlib-resnet on %s (%s%s), weights sha256 %s",
            self._device,
            str(dtype).removeprefix("torch."),
            ", channels_last" if self.channels_last else "",
            loaded.sha256[:12],
        )

    @property
    def device(self) -> torch.device:
        return self._device

    def _check(self, chips: torch.Tensor) -> None:
        if not isinstance(chips, torch.Tensor):
            raise InvalidParameter(f"chips: expected a torch.Tensor, got {type(chips).__name__}")
        size = self.chip.size
        if chips.dtype != torch.uint8 or chips.ndim != 4 or tuple(chips.shape[1:]) != (3, size, size):
            raise InvalidParameter(
                f"chips: expected uint8 (n, 3, {size}, {size}), got {chips.dtype} {tuple(chips.shape)}"
            )

    def raw_descriptor(self, chips: torch.Tensor) -> torch.Tensor:
        """uint8 (n, 3, 150, 150) RGB chips on any device -> float32 (n, 128) on CPU, un-normalised.

        The same vector dlib's ``compute_face_descriptor`` returns for the same chip.
        """
        self._check(chips)
        if chips.shape[0] == 0:
            return torch.zeros((0, self.dim), dtype=torch.float32)
        with torch.inference_mode():
            x = self.model.normalize(chips.to(self._device, non_blocking=True))
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            if self.dtype == torch.float32:
                out = self.model(x)
            else:
                with torch.autocast(self._device.type, dtype=self.dtype):
                    out = self.model(x)
            return out.float().cpu()

    def embed(self, chips: torch.Tensor) -> torch.Tensor:
        """uint8 (n, 3, 150, 150) RGB chips on any device -> float32 (n, 128) on CPU, unit L2 norm."""
        return F.normalize(self.raw_descriptor(chips), dim=1)


__all__ = ["DLIB_CHIP", "DlibResNet", "DlibResNetEmbedder"]
