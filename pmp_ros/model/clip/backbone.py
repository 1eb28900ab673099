"""ClipBackbone: an open_clip convolutional image tower as a multi-scale feature extractor (FC-CLIP style).

Two tower families are supported, both convolutional so that dense features work at any input size:
- ModifiedResNet (open_clip RN configs): stem -> layer1..4 give res2..res5; the dense CLIP features are
  res5 itself, and the pooling head applied to mask-pooled features is attnpool's value and output
  projections (MaskCLIP: with one token per region, attention pooling reduces to v_proj then c_proj).
- ConvNeXt through open_clip's TimmModel: trunk.stem + trunk.stages give res2..res5; dense features are
  trunk.norm_pre(res5); the pooling head is trunk.head (its LayerNorm on a 1x1 map) then visual.head.
The attention pool's positional embedding is never used, so the training image size does not bind.
"""

from __future__ import annotations

import torch
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from open_clip.modified_resnet import ModifiedResNet
from open_clip.timm_model import TimmModel
from torch import nn

LEVELS = ("res2", "res3", "res4", "res5")


class ClipBackbone(nn.Module):
    """Image tower of an open_clip CLIP model.

    Args:
        open_clip_model: an open_clip ``CLIP`` whose ``visual`` is a ModifiedResNet or a timm ConvNeXt.
        frozen: parameters get requires_grad False, the tower stays in eval mode (BatchNorm statistics
            included) whatever ``.train()`` says, and the forward pass runs without autograd.

    Attributes:
        out_channels: channels of res2..res5.
        clip_dim: D, the CLIP joint embedding size returned by ``visual_prediction``.
        logit_scale: the CLIP model's (raw, un-exponentiated) logit scale parameter.
        mean, std: the RGB normalisation the tower was trained with (inputs must already be normalised).
    """

    def __init__(self, open_clip_model: nn.Module, frozen: bool = True):
        super().__init__()
        visual = open_clip_model.visual
        if isinstance(visual, ModifiedResNet):
            self.kind = "resnet"
            stages = (visual.layer1, visual.layer2, visual.layer3, visual.layer4)
            channels = [stage[-1].bn3.num_features for stage in stages]
        elif isinstance(visual, TimmModel) and all(hasattr(visual.trunk, a) for a in ("stem", "stages", "norm_pre")):
            self.kind = "convnext"
            if len(visual.trunk.stages) != 4:
                raise ValueError(f"expected a 4-stage ConvNeXt trunk, got {len(visual.trunk.stages)} stages")
            channels = [info["num_chs"] for info in visual.trunk.feature_info]
        else:
            raise ValueError(
                f"unsupported CLIP image tower {type(visual).__name__}: ClipBackbone needs a ModifiedResNet "
                "or a timm ConvNeXt (dense features from a convolutional tower)"
            )
        self.visual = visual
        self.logit_scale = open_clip_model.logit_scale
        self.out_channels = dict(zip(LEVELS, channels))
        preprocess = getattr(visual, "preprocess_cfg", {}) or {}
        self.mean = tuple(preprocess.get("mean", OPENAI_DATASET_MEAN))
        self.std = tuple(preprocess.get("std", OPENAI_DATASET_STD))
        self.frozen = frozen
        with torch.no_grad():
            self.clip_dim = self.visual_prediction(torch.zeros(1, 1, channels[-1])).shape[-1]
        if frozen:
            self.requires_grad_(False)
        self.train(self.training)

    def train(self, mode: bool = True) -> ClipBackbone:
        """A frozen tower ignores train mode: its BatchNorm statistics must stay those of CLIP."""
        return super().train(mode and not self.frozen)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """images [B,3,H,W] float, CLIP-normalised, sides multiples of 32 (otherwise each stride-2 step floors).

        Returns res2 [B,c2,H/4,W/4], res3 [B,c3,H/8,W/8], res4 [B,c4,H/16,W/16], res5 [B,c5,H/32,W/32] and
        clip_vis_dense [B,c5,H/32,W/32].
        """
        dtype = next(self.visual.parameters()).dtype
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            if self.kind == "resnet":
                x = self.visual.stem(images.to(dtype))
                stages = (self.visual.layer1, self.visual.layer2, self.visual.layer3, self.visual.layer4)
            else:
                x = self.visual.trunk.stem(images.to(dtype))
                stages = tuple(self.visual.trunk.stages)
            out = {}
            for name, stage in zip(LEVELS, stages):
                x = stage(x)
                out[name] = x
            out["clip_vis_dense"] = x if self.kind == "resnet" else self.visual.trunk.norm_pre(x)
        return out

    def encode_crops(self, crops: torch.Tensor) -> torch.Tensor:
        """The tower's own image embedding (as CLIP's encode_image, not normalised) of CLIP-normalised crops
        [N,3,S,S] -> [N,D]; S should be the size the tower was trained at (its attention pool's grid)."""
        dtype = next(self.visual.parameters()).dtype
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            return self.visual(crops.to(dtype))

    def visual_prediction(self, pooled: torch.Tensor) -> torch.Tensor:
        """The tower's pooling head on mask-pooled dense features: pooled [B,Q,c5] -> embeddings [B,Q,D].

        Not normalised (the classifier normalises). Runs with autograd if enabled, so gradients can reach
        the pooled features even when the tower's own parameters are frozen.
        """
        b, q, c = pooled.shape
        if self.kind == "resnet":
            attnpool = self.visual.attnpool
            return attnpool.c_proj(attnpool.v_proj(pooled))
        # trunk.head pools then normalises a map: a 1x1 map makes the pooling the identity.
        x = self.visual.trunk.head(pooled.reshape(b * q, c, 1, 1)).flatten(1)
        return self.visual.head(x).reshape(b, q, -1)
