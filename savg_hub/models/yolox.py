"""YOLOX (CSPDarknet + YOLOX-PAFPN + decoupled head): the person detector of SAVGBench's Spatial AV-Align.

The official evaluation runs mmdetection's ``yolox_tiny_8x8_300e_coco`` (deepen 0.33, widen 0.375) on every
video frame and keeps COCO class 0 (person). This module is an independent implementation of that network with
the same arithmetic, so that the released mmdetection checkpoint converts into it (``savg_hub.convert.yolox``)
and gives the same raw head outputs:

* **backbone** (CSPDarknet, P5): a *Focus* stem (space-to-depth: the four pixel phases top-left, bottom-left,
  top-right, bottom-right stacked on channels, then a 3x3 conv), then four stages, each a stride-2 3x3 conv
  and a CSP layer; the last stage has an SPP bottleneck (max-pools 5/9/13, stride 1) between the two and CSP
  blocks without residual adds. Stages 2, 3, 4 feed the neck (strides 8, 16, 32).
* **neck** (YOLOX-PAFPN): top-down (1x1 reduce, nearest x2 upsample, concat, CSP layer without residuals),
  bottom-up (stride-2 3x3 conv, concat, CSP layer), then a 1x1 conv to ``neck_out_channels`` per level.
* **head**: per level, two stacks of 3x3 convs (classification and regression branches) followed by 1x1
  convs predicting class logits, box deltas and an objectness logit.

Every conv except the head's final 1x1 predictors is conv (no bias) -> BatchNorm -> Swish (x * sigmoid(x)).
The network reads BGR images in [0, 255] with no mean/std normalisation, like mmdetection's YOLOX.

Example::

    from savg_hub.models.yolox import YOLOXModel
    model = YOLOXModel().eval()                       # YOLOX-tiny layout, random weights
    out = model(torch.zeros(1, 3, 416, 416))          # out.cls_scores[0]: (1, 80, 52, 52)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput
from torch import nn

# (in channels, out channels, CSP blocks, residual add in the CSP blocks, SPP) of CSPDarknet-P5 before the
# width/depth factors.
_P5_STAGES: tuple[tuple[int, int, int, bool, bool], ...] = (
    (64, 128, 3, True, False),
    (128, 256, 9, True, False),
    (256, 512, 9, True, False),
    (512, 1024, 3, False, True),
)
_P5_STRIDES = (8, 16, 32)


@dataclass
class YOLOXOutput(BaseOutput):
    """Raw head outputs of :class:`YOLOXModel`, one tensor per level (strides 8, 16, 32), before any sigmoid.

    Args:
        cls_scores (`tuple[torch.Tensor, ...]`): class logits, each float32 `(N, num_classes, H / s, W / s)`.
        bbox_preds (`tuple[torch.Tensor, ...]`): box deltas `(dx, dy, log w, log h)` in units of the level
            stride, each `(N, 4, H / s, W / s)` (decode with :func:`decode_yolox_boxes`).
        objectnesses (`tuple[torch.Tensor, ...]`): objectness logits, each `(N, 1, H / s, W / s)`.
    """

    cls_scores: tuple[torch.Tensor, ...]
    bbox_preds: tuple[torch.Tensor, ...]
    objectnesses: tuple[torch.Tensor, ...]


class Swish(nn.Module):
    """``x * sigmoid(x)``, computed unfused like mmcv's ``Swish``.

    Mathematically ``nn.SiLU``, but PyTorch's fused SiLU rounds differently in the last float32 bit; through
    this deep network that grows to ~5e-4 on the head outputs, while the unfused form reproduces mmdetection's
    outputs to the bit on strides 8 and 16.
    """

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """Element-wise; any shape."""
        return hidden_states * torch.sigmoid(hidden_states)


class ConvNormAct(nn.Module):
    """``Conv2d`` (no bias) -> ``BatchNorm2d`` -> :class:`Swish`, "same" padding for odd kernels.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: square kernel size (odd).
        stride: convolution stride.
        norm_eps: BatchNorm epsilon.
        norm_momentum: BatchNorm momentum (training only).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int,
        norm_eps: float,
        norm_momentum: float,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride, padding=(kernel_size - 1) // 2, bias=False
        )
        self.norm = nn.BatchNorm2d(out_channels, eps=norm_eps, momentum=norm_momentum)
        self.act = Swish()

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """`(N, C_in, H, W)` -> `(N, C_out, H / stride, W / stride)`."""
        return self.act(self.norm(self.conv(hidden_states)))


class Focus(nn.Module):
    """Space-to-depth stem: the four 2x2 pixel phases stacked on channels, then a 3x3 :class:`ConvNormAct`.

    Channel order of the stacked phases: (even row, even col), (odd row, even col), (even row, odd col),
    (odd row, odd col), as in mmdetection's ``Focus``.
    """

    def __init__(self, in_channels: int, out_channels: int, norm_eps: float, norm_momentum: float) -> None:
        super().__init__()
        self.conv = ConvNormAct(4 * in_channels, out_channels, 3, 1, norm_eps, norm_momentum)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """`(N, C, H, W)` with even H, W -> `(N, out_channels, H / 2, W / 2)`."""
        stacked = torch.cat(
            (images[..., ::2, ::2], images[..., 1::2, ::2], images[..., ::2, 1::2], images[..., 1::2, 1::2]),
            dim=1,
        )
        return self.conv(stacked)


class DarknetBottleneck(nn.Module):
    """1x1 then 3x3 :class:`ConvNormAct` (same width), plus the input when ``add_identity``."""

    def __init__(self, channels: int, add_identity: bool, norm_eps: float, norm_momentum: float) -> None:
        super().__init__()
        self.conv1 = ConvNormAct(channels, channels, 1, 1, norm_eps, norm_momentum)
        self.conv2 = ConvNormAct(channels, channels, 3, 1, norm_eps, norm_momentum)
        self.add_identity = add_identity

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """`(N, C, H, W)` -> `(N, C, H, W)`."""
        out = self.conv2(self.conv1(hidden_states))
        return out + hidden_states if self.add_identity else out


class CSPLayer(nn.Module):
    """Cross-stage-partial layer: ``final_conv(cat(blocks(main_conv(x)), short_conv(x)))``.

    Args:
        in_channels: input channels.
        out_channels: output channels; both halves have ``out_channels // 2``.
        num_blocks: :class:`DarknetBottleneck` count on the main path.
        add_identity: residual adds inside the bottlenecks.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_blocks: int,
        add_identity: bool,
        norm_eps: float,
        norm_momentum: float,
    ) -> None:
        super().__init__()
        mid = int(out_channels * 0.5)
        self.main_conv = ConvNormAct(in_channels, mid, 1, 1, norm_eps, norm_momentum)
        self.short_conv = ConvNormAct(in_channels, mid, 1, 1, norm_eps, norm_momentum)
        self.final_conv = ConvNormAct(2 * mid, out_channels, 1, 1, norm_eps, norm_momentum)
        self.blocks = nn.Sequential(
            *[DarknetBottleneck(mid, add_identity, norm_eps, norm_momentum) for _ in range(num_blocks)]
        )

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """`(N, C_in, H, W)` -> `(N, C_out, H, W)`."""
        short = self.short_conv(hidden_states)
        main = self.blocks(self.main_conv(hidden_states))
        return self.final_conv(torch.cat((main, short), dim=1))


class SPPBottleneck(nn.Module):
    """1x1 conv to half width, concat with stride-1 max-pools of each kernel size, 1x1 conv."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_sizes: Sequence[int],
        norm_eps: float,
        norm_momentum: float,
    ) -> None:
        super().__init__()
        mid = in_channels // 2
        self.conv1 = ConvNormAct(in_channels, mid, 1, 1, norm_eps, norm_momentum)
        self.kernel_sizes = tuple(int(k) for k in kernel_sizes)
        self.conv2 = ConvNormAct(
            mid * (len(self.kernel_sizes) + 1), out_channels, 1, 1, norm_eps, norm_momentum
        )

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """`(N, C_in, H, W)` -> `(N, C_out, H, W)`."""
        x = self.conv1(hidden_states)
        pooled = [F.max_pool2d(x, kernel_size=k, stride=1, padding=k // 2) for k in self.kernel_sizes]
        return self.conv2(torch.cat([x, *pooled], dim=1))


class CSPDarknetStage(nn.Module):
    """Stride-2 3x3 :class:`ConvNormAct`, an optional :class:`SPPBottleneck`, then a :class:`CSPLayer`."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_blocks: int,
        add_identity: bool,
        use_spp: bool,
        spp_kernel_sizes: Sequence[int],
        norm_eps: float,
        norm_momentum: float,
    ) -> None:
        super().__init__()
        self.downsample = ConvNormAct(in_channels, out_channels, 3, 2, norm_eps, norm_momentum)
        self.spp = (
            SPPBottleneck(out_channels, out_channels, spp_kernel_sizes, norm_eps, norm_momentum)
            if use_spp
            else None
        )
        self.csp = CSPLayer(out_channels, out_channels, num_blocks, add_identity, norm_eps, norm_momentum)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """`(N, C_in, H, W)` -> `(N, C_out, H / 2, W / 2)`."""
        x = self.downsample(hidden_states)
        if self.spp is not None:
            x = self.spp(x)
        return self.csp(x)


class CSPDarknet(nn.Module):
    """CSPDarknet-P5 backbone; returns the outputs of stages 2, 3 and 4 (strides 8, 16, 32)."""

    def __init__(
        self,
        in_channels: int,
        deepen_factor: float,
        widen_factor: float,
        spp_kernel_sizes: Sequence[int],
        norm_eps: float,
        norm_momentum: float,
    ) -> None:
        super().__init__()
        self.stem = Focus(in_channels, int(_P5_STAGES[0][0] * widen_factor), norm_eps, norm_momentum)
        self.stages = nn.ModuleList()
        for stage_in, stage_out, blocks, add_identity, use_spp in _P5_STAGES:
            self.stages.append(
                CSPDarknetStage(
                    int(stage_in * widen_factor),
                    int(stage_out * widen_factor),
                    max(round(blocks * deepen_factor), 1),
                    add_identity,
                    use_spp,
                    spp_kernel_sizes,
                    norm_eps,
                    norm_momentum,
                )
            )

    @property
    def out_channels(self) -> tuple[int, ...]:
        """Channels of the three returned feature maps."""
        return tuple(stage.csp.final_conv.conv.out_channels for stage in self.stages[1:])

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """`(N, 3, H, W)` -> features at strides 8, 16, 32."""
        x = self.stem(images)
        outs = []
        for index, stage in enumerate(self.stages):
            x = stage(x)
            if index >= 1:
                outs.append(x)
        return tuple(outs)


class YOLOXPAFPN(nn.Module):
    """YOLOX path-aggregation neck: top-down then bottom-up CSP fusion, then 1x1 convs to ``out_channels``."""

    def __init__(
        self,
        in_channels: Sequence[int],
        out_channels: int,
        num_csp_blocks: int,
        norm_eps: float,
        norm_momentum: float,
    ) -> None:
        super().__init__()
        ch = list(in_channels)
        levels = len(ch)
        self.reduce_layers = nn.ModuleList()
        self.top_down_blocks = nn.ModuleList()
        for idx in range(levels - 1, 0, -1):
            self.reduce_layers.append(ConvNormAct(ch[idx], ch[idx - 1], 1, 1, norm_eps, norm_momentum))
            self.top_down_blocks.append(
                CSPLayer(2 * ch[idx - 1], ch[idx - 1], num_csp_blocks, False, norm_eps, norm_momentum)
            )
        self.downsamples = nn.ModuleList()
        self.bottom_up_blocks = nn.ModuleList()
        for idx in range(levels - 1):
            self.downsamples.append(ConvNormAct(ch[idx], ch[idx], 3, 2, norm_eps, norm_momentum))
            self.bottom_up_blocks.append(
                CSPLayer(2 * ch[idx], ch[idx + 1], num_csp_blocks, False, norm_eps, norm_momentum)
            )
        self.out_convs = nn.ModuleList(
            [ConvNormAct(c, out_channels, 1, 1, norm_eps, norm_momentum) for c in ch]
        )

    def forward(self, features: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """Backbone features (fine to coarse) -> fused features, same resolutions, ``out_channels`` each."""
        levels = len(features)
        # top-down: inner[0] is always the finest fused map so far
        inner = [features[-1]]
        for step, idx in enumerate(range(levels - 1, 0, -1)):
            coarse = self.reduce_layers[step](inner[0])
            inner[0] = coarse
            upsampled = F.interpolate(coarse, scale_factor=2.0, mode="nearest")
            inner.insert(0, self.top_down_blocks[step](torch.cat((upsampled, features[idx - 1]), dim=1)))
        # bottom-up
        outs = [inner[0]]
        for idx in range(levels - 1):
            down = self.downsamples[idx](outs[-1])
            outs.append(self.bottom_up_blocks[idx](torch.cat((down, inner[idx + 1]), dim=1)))
        return tuple(conv(out) for conv, out in zip(self.out_convs, outs))


class YOLOXHeadLevel(nn.Module):
    """Decoupled YOLOX head of one level: class branch and box/objectness branch."""

    def __init__(
        self,
        in_channels: int,
        feat_channels: int,
        stacked_convs: int,
        num_classes: int,
        norm_eps: float,
        norm_momentum: float,
    ) -> None:
        super().__init__()

        def stack() -> nn.Sequential:
            return nn.Sequential(
                *[
                    ConvNormAct(
                        in_channels if i == 0 else feat_channels, feat_channels, 3, 1, norm_eps, norm_momentum
                    )
                    for i in range(stacked_convs)
                ]
            )

        self.cls_convs = stack()
        self.reg_convs = stack()
        self.cls_pred = nn.Conv2d(feat_channels, num_classes, 1)
        self.reg_pred = nn.Conv2d(feat_channels, 4, 1)
        self.obj_pred = nn.Conv2d(feat_channels, 1, 1)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`(N, C, h, w)` -> class logits `(N, K, h, w)`, deltas `(N, 4, h, w)`, objectness `(N, 1, h, w)`."""
        cls_feat = self.cls_convs(features)
        reg_feat = self.reg_convs(features)
        return self.cls_pred(cls_feat), self.reg_pred(reg_feat), self.obj_pred(reg_feat)


class YOLOXModel(ModelMixin, ConfigMixin):
    """YOLOX detector network (CSPDarknet-P5 + YOLOX-PAFPN + decoupled head); defaults are YOLOX-tiny.

    Args:
        in_channels (`int`, *optional*, defaults to 3): image channels (BGR).
        num_classes (`int`, *optional*, defaults to 80): detection classes (COCO: 0 = person).
        deepen_factor (`float`, *optional*, defaults to 0.33): depth multiplier of the CSP block counts
            (backbone stages ``max(round(n * deepen_factor), 1)`` for n = 3, 9, 9, 3; neck
            ``max(round(3 * deepen_factor), 1)``).
        widen_factor (`float`, *optional*, defaults to 0.375): width multiplier of the backbone channels
            (64, 128, 256, 512, 1024).
        spp_kernel_sizes (`tuple[int, ...]`, *optional*, defaults to `(5, 9, 13)`): max-pool kernel sizes of
            the SPP bottleneck in the last backbone stage.
        neck_out_channels (`int`, *optional*, defaults to 96): channels of every neck output level.
        head_feat_channels (`int`, *optional*, defaults to 96): channels of the head's stacked convs.
        head_stacked_convs (`int`, *optional*, defaults to 2): 3x3 convs per head branch.
        strides (`tuple[int, ...]`, *optional*, defaults to `(8, 16, 32)`): strides of the three output
            levels, used when decoding boxes. The P5 backbone makes exactly these; nothing else is accepted.
        norm_eps (`float`, *optional*, defaults to 1e-3): BatchNorm epsilon.
        norm_momentum (`float`, *optional*, defaults to 0.03): BatchNorm momentum (training only).
    """

    @register_to_config
    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 80,
        deepen_factor: float = 0.33,
        widen_factor: float = 0.375,
        spp_kernel_sizes: tuple[int, ...] = (5, 9, 13),
        neck_out_channels: int = 96,
        head_feat_channels: int = 96,
        head_stacked_convs: int = 2,
        strides: tuple[int, ...] = (8, 16, 32),
        norm_eps: float = 1e-3,
        norm_momentum: float = 0.03,
    ) -> None:
        super().__init__()
        if tuple(int(s) for s in strides) != _P5_STRIDES:
            raise ValueError(
                f"strides must be {_P5_STRIDES} (what the CSPDarknet-P5 backbone produces), got {strides}"
            )
        for name, value in (
            ("in_channels", in_channels),
            ("num_classes", num_classes),
            ("neck_out_channels", neck_out_channels),
            ("head_feat_channels", head_feat_channels),
            ("head_stacked_convs", head_stacked_convs),
        ):
            if int(value) < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if not (deepen_factor > 0 and widen_factor > 0):
            raise ValueError(
                f"deepen_factor and widen_factor must be > 0, got {deepen_factor}, {widen_factor}"
            )
        if any(int(k) < 1 or int(k) % 2 == 0 for k in spp_kernel_sizes):
            raise ValueError(f"spp_kernel_sizes must be odd positive integers, got {spp_kernel_sizes}")

        self.backbone = CSPDarknet(
            in_channels, deepen_factor, widen_factor, spp_kernel_sizes, norm_eps, norm_momentum
        )
        self.neck = YOLOXPAFPN(
            self.backbone.out_channels,
            neck_out_channels,
            max(round(3 * deepen_factor), 1),
            norm_eps,
            norm_momentum,
        )
        self.head = nn.ModuleList(
            [
                YOLOXHeadLevel(
                    neck_out_channels,
                    head_feat_channels,
                    head_stacked_convs,
                    num_classes,
                    norm_eps,
                    norm_momentum,
                )
                for _ in strides
            ]
        )

    def forward(self, images: torch.Tensor, return_dict: bool = True) -> YOLOXOutput | tuple:
        """Raw per-level head outputs.

        Args:
            images (`torch.Tensor`): float `(N, 3, H, W)`, BGR, values in [0, 255] (no normalisation);
                H and W must be multiples of 32 (pad first; see ``savg_hub.evaluation.detectors``).
            return_dict (`bool`, *optional*, defaults to `True`): return a :class:`YOLOXOutput` instead of a
                tuple ``(cls_scores, bbox_preds, objectnesses)``.
        """
        if images.ndim != 4 or images.shape[1] != self.config.in_channels:
            raise ValueError(
                f"images must be (N, {self.config.in_channels}, H, W), got {tuple(images.shape)}"
            )
        height, width = images.shape[-2:]
        if height % 32 or width % 32 or height == 0 or width == 0:
            raise ValueError(f"image height and width must be positive multiples of 32, got {height}x{width}")
        features = self.neck(self.backbone(images))
        outputs = [level(feature) for level, feature in zip(self.head, features)]
        cls_scores = tuple(o[0] for o in outputs)
        bbox_preds = tuple(o[1] for o in outputs)
        objectnesses = tuple(o[2] for o in outputs)
        if not return_dict:
            return cls_scores, bbox_preds, objectnesses
        return YOLOXOutput(cls_scores=cls_scores, bbox_preds=bbox_preds, objectnesses=objectnesses)


def yolox_priors(
    feature_sizes: Sequence[tuple[int, int]],
    strides: Sequence[int],
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Point priors of all levels, concatenated, as mmdetection's ``MlvlPointGenerator(strides, offset=0)``.

    Args:
        feature_sizes: ``(h, w)`` of each level's feature map.
        strides: stride of each level in input pixels.

    Returns:
        `(P, 4)` tensor of ``(x, y, stride, stride)``, x = column * stride, y = row * stride (top-left corner
        of the cell, no half-cell offset), levels in order and row-major (y slow, x fast) within a level,
        matching ``permute(0, 2, 3, 1).reshape(N, -1, C)`` of the head outputs.
    """
    if len(feature_sizes) != len(strides):
        raise ValueError(f"{len(feature_sizes)} feature sizes for {len(strides)} strides")
    priors = []
    for (height, width), stride in zip(feature_sizes, strides):
        xs = (torch.arange(int(width), device=device) * stride).to(dtype)
        ys = (torch.arange(int(height), device=device) * stride).to(dtype)
        yy, xx = torch.meshgrid(ys, xs, indexing="ij")
        strides_col = torch.full_like(xx, float(stride))
        priors.append(
            torch.stack(
                [xx.reshape(-1), yy.reshape(-1), strides_col.reshape(-1), strides_col.reshape(-1)], dim=-1
            )
        )
    return torch.cat(priors, dim=0)


def decode_yolox_boxes(priors: torch.Tensor, bbox_preds: torch.Tensor) -> torch.Tensor:
    """Decode YOLOX box deltas to corner boxes, as mmdetection's ``YOLOXHead._bbox_decode``.

    Args:
        priors: `(P, 4)` from :func:`yolox_priors`.
        bbox_preds: `(..., P, 4)` deltas ``(dx, dy, dw, dh)``.

    Returns:
        `(..., P, 4)` boxes ``(x0, y0, x1, y1)`` in network-input pixels: centre = delta * stride + prior,
        size = exp(delta) * stride.
    """
    centres = bbox_preds[..., :2] * priors[:, 2:] + priors[:, :2]
    sizes = bbox_preds[..., 2:].exp() * priors[:, 2:]
    x0 = centres[..., 0] - sizes[..., 0] / 2
    y0 = centres[..., 1] - sizes[..., 1] / 2
    x1 = centres[..., 0] + sizes[..., 0] / 2
    y1 = centres[..., 1] + sizes[..., 1] / 2
    return torch.stack([x0, y0, x1, y1], dim=-1)


def flatten_yolox_outputs(
    output: YOLOXOutput, strides: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Decode per-level head outputs into per-prior boxes and probabilities.

    Args:
        output: :class:`YOLOXOutput` of a batch of N images.
        strides: stride of each level (``model.config.strides``).

    Returns:
        ``(boxes, class_probs, objectness)``: `(N, P, 4)` corner boxes in network-input pixels,
        `(N, P, K)` sigmoid class probabilities, `(N, P)` sigmoid objectness; P = sum of h * w over levels.
    """
    num = output.cls_scores[0].shape[0]
    num_classes = output.cls_scores[0].shape[1]
    sizes = [tuple(c.shape[-2:]) for c in output.cls_scores]
    priors = yolox_priors(
        sizes, strides, dtype=output.cls_scores[0].dtype, device=output.cls_scores[0].device
    )
    cls = torch.cat([c.permute(0, 2, 3, 1).reshape(num, -1, num_classes) for c in output.cls_scores], dim=1)
    deltas = torch.cat([b.permute(0, 2, 3, 1).reshape(num, -1, 4) for b in output.bbox_preds], dim=1)
    obj = torch.cat([o.permute(0, 2, 3, 1).reshape(num, -1) for o in output.objectnesses], dim=1)
    return decode_yolox_boxes(priors, deltas), cls.sigmoid(), obj.sigmoid()
