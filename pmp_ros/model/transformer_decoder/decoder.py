"""FC-CLIP's Mask2Former decoder (masked attention, round robin over 3 scales) with PMP after each layer.

Parameter names follow FC-CLIP's `sem_seg_head.predictor.*`; PMP adds `prompt_attention_layers.*`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pmp_ros.model.classifier import MaskPooling, classification_logits
from pmp_ros.model.config import DecoderConfig
from pmp_ros.model.pixel_decoder.layers import c2_xavier_fill
from pmp_ros.model.position_encoding import PositionEmbeddingSine
from pmp_ros.model.transformer_decoder.layers import MLP, CrossAttentionLayer, FFNLayer, SelfAttentionLayer
from pmp_ros.model.transformer_decoder.prompt_attention import PromptAttentionLayer

NUM_FEATURE_LEVELS = 3


class MultiScaleMaskedTransformerDecoder(nn.Module):
    """Learnable queries -> per-layer (class logits, mask logits); layer i attends to level i % 3 under the
    mask predicted before it (pixels whose predicted mask probability is < 0.5 are hidden)."""

    def __init__(
        self,
        cfg: DecoderConfig,
        in_channels: int,
        mask_dim: int,
        clip_dim: int,
        text_width: int | None = None,
    ) -> None:
        super().__init__()
        d, self.num_heads, self.num_layers = cfg.hidden_dim, cfg.num_heads, cfg.num_layers
        self.pe_layer = PositionEmbeddingSine(d // 2, normalize=True)
        self.transformer_self_attention_layers = nn.ModuleList(
            SelfAttentionLayer(d, cfg.num_heads) for _ in range(cfg.num_layers)
        )
        self.transformer_cross_attention_layers = nn.ModuleList(
            CrossAttentionLayer(d, cfg.num_heads) for _ in range(cfg.num_layers)
        )
        self.transformer_ffn_layers = nn.ModuleList(FFNLayer(d, cfg.ffn_dim) for _ in range(cfg.num_layers))
        self.decoder_norm = nn.LayerNorm(d)
        self.query_feat = nn.Embedding(cfg.num_queries, d)  # initial query content
        self.query_embed = nn.Embedding(cfg.num_queries, d)  # query positional embedding
        self.level_embed = nn.Embedding(NUM_FEATURE_LEVELS, d)
        self.input_proj = nn.ModuleList()
        for _ in range(NUM_FEATURE_LEVELS):
            if in_channels != d or cfg.enforce_input_proj:
                conv = nn.Conv2d(in_channels, d, kernel_size=1)
                c2_xavier_fill(conv)
                self.input_proj.append(conv)
            else:
                self.input_proj.append(nn.Sequential())  # identity, no weights (as in FC-CLIP)
        self.mask_embed = MLP(d, d, mask_dim, 3)
        # FC-CLIP's class path: mask-pooled pixel features + query -> CLIP embedding space.
        self.mask_pooling = MaskPooling()
        self._mask_pooling_proj = nn.Sequential(nn.LayerNorm(mask_dim), nn.Linear(mask_dim, d))
        self.class_embed = MLP(d, d, clip_dim, 3)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.prompt_attention_layers: nn.ModuleList | None = None
        if cfg.pmp:
            if text_width is None:
                raise ValueError("cfg.decoder.pmp=True needs text_width")
            # Built last and on a forked RNG: a PMP model and its prompt-free twin built from the same seed
            # share every other weight, and modules created after the head see the same random stream.
            with torch.random.fork_rng(devices=[]):
                self.prompt_attention_layers = nn.ModuleList(
                    PromptAttentionLayer(d, cfg.pmp_num_heads, text_width) for _ in range(cfg.num_layers)
                )

    def forward(
        self,
        multi_scale_features: list[Tensor],
        mask_features: Tensor,
        text_classifier: Tensor,
        num_templates: Sequence[int],
        prompt_tokens: Tensor | None = None,
        prompt_padding: Tensor | None = None,
        return_intermediates: bool = False,
    ) -> dict:
        """multi_scale_features: [1/32, 1/16, 1/8] maps [B, in_channels, h_l, w_l];
        mask_features: [B, mask_dim, H/4, W/4]; text_classifier: [K+1, D]; num_templates: len C;
        prompt_tokens: [B, T, W_t] | None; prompt_padding: bool [B, T] (True = padding) | None.

        Returns pred_logits [B, Q, C+1], pred_masks [B, Q, H/4, W/4] (last prediction) and aux_outputs
        (the num_layers earlier ones, the first from the learnable queries alone). With
        return_intermediates, also attn_masks: per prediction bool [B, Q, h*w] (True = hidden), before the
        all-hidden rows are released.
        """
        srcs, poss, sizes = [], [], []
        for lvl, x in enumerate(multi_scale_features[:NUM_FEATURE_LEVELS]):
            sizes.append((x.shape[-2], x.shape[-1]))
            poss.append(self.pe_layer(x).flatten(2).transpose(1, 2))  # [B, hw, d]
            # The level embedding goes into src, so it reaches keys and values.
            src = self.input_proj[lvl](x).flatten(2) + self.level_embed.weight[lvl][None, :, None]
            srcs.append(src.transpose(1, 2))
        b = mask_features.shape[0]
        query_pos = self.query_embed.weight.unsqueeze(0).expand(b, -1, -1)
        output = self.query_feat.weight.unsqueeze(0).expand(b, -1, -1)

        preds = []
        pred = self._predict(output, mask_features, text_classifier, num_templates, sizes[0])
        preds.append(pred)
        for i in range(self.num_layers):
            lvl = i % NUM_FEATURE_LEVELS
            hidden = pred["attn_mask"]
            # A query that would see nothing attends everywhere instead (avoids an all -inf softmax).
            hidden = hidden & ~hidden.all(-1, keepdim=True)
            attn_mask = hidden.unsqueeze(1).expand(-1, self.num_heads, -1, -1).flatten(0, 1)  # b*heads + h
            output = self.transformer_cross_attention_layers[i](output, srcs[lvl], attn_mask, poss[lvl], query_pos)
            output = self.transformer_self_attention_layers[i](output, query_pos)
            output = self.transformer_ffn_layers[i](output)
            if self.prompt_attention_layers is not None:
                output = self.prompt_attention_layers[i](output, query_pos, prompt_tokens, prompt_padding)
            pred = self._predict(
                output, mask_features, text_classifier, num_templates, sizes[(i + 1) % NUM_FEATURE_LEVELS]
            )
            preds.append(pred)

        out = {
            "pred_logits": preds[-1]["pred_logits"],
            "pred_masks": preds[-1]["pred_masks"],
            "aux_outputs": [{"pred_logits": p["pred_logits"], "pred_masks": p["pred_masks"]} for p in preds[:-1]],
        }
        if return_intermediates:
            out["attn_masks"] = [p["attn_mask"] for p in preds]
        return out

    def _predict(
        self,
        output: Tensor,
        mask_features: Tensor,
        text_classifier: Tensor,
        num_templates: Sequence[int],
        attn_mask_size: tuple[int, int],
    ) -> dict[str, Tensor]:
        """output: [B, Q, d] -> pred_logits [B, Q, C+1], pred_masks [B, Q, H/4, W/4], and the next layer's
        attn_mask bool [B, Q, h*w] at attn_mask_size (True = hidden)."""
        decoded = self.decoder_norm(output)
        masks = torch.einsum("bqc,bchw->bqhw", self.mask_embed(decoded), mask_features)
        pooled = self._mask_pooling_proj(self.mask_pooling(mask_features, masks))
        class_embed = self.class_embed(pooled + decoded)
        logits = classification_logits(class_embed, text_classifier, self.logit_scale, num_templates)
        small = F.interpolate(masks, size=attn_mask_size, mode="bilinear", align_corners=False)
        attn_mask = (small.sigmoid().flatten(2) < 0.5).detach()
        return {"pred_logits": logits, "pred_masks": masks, "attn_mask": attn_mask}
