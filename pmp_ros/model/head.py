"""PMPHead: pixel decoder + query decoder (FC-CLIP's `sem_seg_head`, with PMP prompt attention)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from torch import Tensor, nn

from pmp_ros.model.config import ModelConfig
from pmp_ros.model.pixel_decoder import build_pixel_decoder
from pmp_ros.model.transformer_decoder import MultiScaleMaskedTransformerDecoder


class PMPHead(nn.Module):
    """Backbone features + text embeddings (+ prompt tokens) -> class logits and masks per query.

    State-dict names are FC-CLIP's without the `sem_seg_head.` prefix: `pixel_decoder.*`, `predictor.*`
    (PMP: `predictor.prompt_attention_layers.*`).
    """

    def __init__(
        self, cfg: ModelConfig, in_channels: dict[str, int], clip_dim: int, text_width: int | None = None
    ) -> None:
        super().__init__()
        self.pixel_decoder = build_pixel_decoder(cfg.pixel_decoder, in_channels)
        self.predictor = MultiScaleMaskedTransformerDecoder(
            cfg.decoder,
            in_channels=cfg.pixel_decoder.conv_dim,
            mask_dim=cfg.pixel_decoder.mask_dim,
            clip_dim=clip_dim,
            text_width=text_width,
        )

    def forward(
        self,
        features: dict[str, Tensor],
        text_classifier: Tensor,
        num_templates: Sequence[int],
        prompt_tokens: Tensor | None = None,
        prompt_padding: Tensor | None = None,
        return_intermediates: bool = False,
    ) -> dict:
        """features: res2 [B,c2,H/4,W/4] ... res5 [B,c5,H/32,W/32]; text_classifier [K+1, D] (void row last);
        num_templates: synonyms per class (len C, sum K); prompt_tokens [B,T,W_t] | None;
        prompt_padding bool [B,T] (True = padding) | None.

        Returns pred_logits [B,Q,C+1], pred_masks [B,Q,H/4,W/4], aux_outputs (list of those two per earlier
        prediction) and mask_features [B,mask_dim,H/4,W/4]. return_intermediates adds
        multi_scale_features ([1/32, 1/16, 1/8] pixel-decoder maps) and attn_masks (bool [B,Q,h*w] per
        prediction, True = hidden).
        """
        mask_features, multi_scale = self.pixel_decoder(features)
        out = self.predictor(
            multi_scale,
            mask_features,
            text_classifier,
            num_templates,
            prompt_tokens=prompt_tokens,
            prompt_padding=prompt_padding,
            return_intermediates=return_intermediates,
        )
        out["mask_features"] = mask_features
        if return_intermediates:
            out["multi_scale_features"] = multi_scale
        return out

    def pmp_parameters(self) -> Iterator[nn.Parameter]:
        """The PMP prompt-attention parameters (none when cfg.decoder.pmp is False): what "fine-tune PMP
        only" trains on top of a converted FC-CLIP model."""
        layers = self.predictor.prompt_attention_layers
        return iter(()) if layers is None else layers.parameters()
