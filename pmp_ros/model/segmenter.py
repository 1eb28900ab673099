"""PMPSegmenter: CLIP towers + PMP head + FC-CLIP's two-stage classification, as one module.

Text and images are separated: `encode_text` runs the text tower once per vocabulary/instruction (the
result is reused frame after frame), `forward` runs per frame.

    segmenter = build_segmenter(cfg)
    text = segmenter.encode_text(["red star", "blue ring"], prompts=["red star"])
    out = segmenter(images, text)        # eval: class_log_probs [B,Q,C+1], pred_masks [B,Q,H/4,W/4]
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pmp_ros.model.checkpoint import load_state_strict, read_checkpoint
from pmp_ros.model.classifier import crop_ensemble, fcclip_ensemble
from pmp_ros.model.clip import ClipBackbone, ClipTextEncoder, create_clip
from pmp_ros.model.clip.registry import weights_loaded_after
from pmp_ros.model.config import ModelConfig
from pmp_ros.model.head import PMPHead
from pmp_ros.model.side_adapter import SideAdapter

SIZE_DIVISIBILITY = 32  # the CLIP towers' total stride
# State-dict prefixes of the CLIP model's weights (image and text towers, logit scale) in a PMPSegmenter.
CLIP_STATE_PREFIXES = ("backbone.", "text_encoder.")


@dataclass(frozen=True)
class TextFeatures:
    """Everything text-derived that a forward pass needs (computed by PMPSegmenter.encode_text).

    class_embeddings: [K,D] L2-normalised rows, the synonyms of each class consecutive.
    num_templates: synonyms per class (len C, sum K).
    seen_mask: [C] float, 1 where the class was seen in training (FC-CLIP's category_overlapping_mask).
    prompt_tokens: [B',T,W_t] CLIP text tokens of the prompts (B' = 1: shared by the batch, or B), or None.
    prompt_padding: [B',T] bool, True = padding, or None.
    """

    class_embeddings: Tensor
    num_templates: tuple[int, ...]
    seen_mask: Tensor
    prompt_tokens: Tensor | None = None
    prompt_padding: Tensor | None = None


def split_synonyms(name: str) -> list[str]:
    """FC-CLIP's convention: a class name may list synonyms separated by commas ("mug, cup")."""
    synonyms = [part.strip() for part in name.split(",") if part.strip()]
    if not synonyms:
        raise ValueError(f"empty class name {name!r}")
    return synonyms


class PMPSegmenter(nn.Module):
    """backbone (ClipBackbone), text_encoder (ClipTextEncoder), head (PMPHead), void_embedding [1,D].

    State-dict prefixes: `backbone.`, `text_encoder.`, `head.` (FC-CLIP's `sem_seg_head.`), `void_embedding.`,
    `side_adapter.` when the config has one, and `crop_backbone.` (the crop classifier's own image tower)
    when cfg.ensemble.crop_tower.
    """

    def __init__(
        self,
        cfg: ModelConfig,
        backbone: ClipBackbone,
        text_encoder: ClipTextEncoder,
        crop_backbone: ClipBackbone | None = None,
    ):
        super().__init__()
        self.cfg = cfg
        self.backbone = backbone
        self.crop_backbone = crop_backbone
        self.text_encoder = text_encoder
        self.side_adapter = SideAdapter(cfg.pixel_decoder.side_adapter) if cfg.pixel_decoder.side_adapter else None
        in_channels = {**backbone.out_channels, **(self.side_adapter.out_channels if self.side_adapter else {})}
        self.head = PMPHead(cfg, in_channels, backbone.clip_dim, text_encoder.width)
        self.void_embedding = nn.Embedding(1, backbone.clip_dim)
        self.register_buffer("pixel_mean", torch.tensor(backbone.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(backbone.std).view(1, 3, 1, 1), persistent=False)
        # FC-CLIP's category_overlapping_mask: a class is seen when any of its synonyms is a synonym of a
        # training class (training classes may list synonyms too, as FC-CLIP's COCO names do).
        self._train_synonyms = frozenset(s for name in cfg.train_classes for s in split_synonyms(name))

    # --- text ------------------------------------------------------------------------------------------

    def encode_text(
        self,
        class_names: Sequence[str],
        prompts: Sequence[str] | Sequence[Sequence[str]] = (),
        templates: Sequence[str] | None = None,
    ) -> TextFeatures:
        """class_names (C, each maybe "syn1, syn2"); prompts: one list shared by the batch, or one list per
        image (training); templates: None = the model's own. Runs the (cached) text tower."""
        synonyms = [split_synonyms(name) for name in class_names]
        flat = [s for group in synonyms for s in group]
        embeddings = self.text_encoder.class_embeddings(flat, templates)
        seen = torch.tensor(
            [float(any(s in self._train_synonyms for s in group)) for group in synonyms], device=embeddings.device
        )
        per_image = [list(p) for p in prompts] if prompts and not isinstance(prompts[0], str) else [list(prompts)]
        tokens, padding = self.prompt_tokens(per_image)
        return TextFeatures(embeddings, tuple(len(g) for g in synonyms), seen, tokens, padding)

    def prompt_tokens(self, prompts_per_image: Sequence[Sequence[str]]) -> tuple[Tensor | None, Tensor | None]:
        """Each image's prompts' valid tokens, concatenated: ([N,T,W_t], padding bool [N,T]).

        None, None when no image has a prompt (PMP then leaves the queries unchanged)."""
        if not self.cfg.decoder.pmp or not any(prompts_per_image):
            return None, None
        unique = list(dict.fromkeys(p for prompts in prompts_per_image for p in prompts))
        tokens, valid = self.text_encoder.prompt_tokens(unique)  # [P,L,W_t], [P,L]
        index = {p: i for i, p in enumerate(unique)}
        sequences = [
            tokens[[index[p] for p in prompts]][valid[[index[p] for p in prompts]]]
            if prompts
            else tokens.new_zeros(0, tokens.shape[-1])
            for prompts in prompts_per_image
        ]
        length = max(1, max(len(s) for s in sequences))
        out = tokens.new_zeros(len(sequences), length, tokens.shape[-1])
        padding = torch.ones(len(sequences), length, dtype=torch.bool, device=tokens.device)
        for i, sequence in enumerate(sequences):
            out[i, : len(sequence)] = sequence
            padding[i, : len(sequence)] = False
        return out, padding

    # --- images ----------------------------------------------------------------------------------------

    def crop_encoder(self, crops: Tensor) -> Tensor:
        """The crop classifier's image tower (its own when attached, else the segmenter's): CLIP-normalised
        crops [N,3,S,S] -> embeddings [N,D]."""
        tower = self.backbone if self.crop_backbone is None else self.crop_backbone
        return tower.encode_crops(crops)

    def attach_crop_tower(self, open_clip_model: nn.Module) -> None:
        """Use the image tower of `open_clip_model` (same text space: trained against this model's frozen text
        tower) for the crop classifier; the config must say so (ensemble.crop_tower) for a saved copy to load."""
        self.crop_backbone = ClipBackbone(open_clip_model, frozen=True)

    def forward(self, images: Tensor, text: TextFeatures) -> dict:
        """images: float [B,3,H,W] RGB in [0,1], any size (padded to a multiple of 32 inside).

        Returns pred_logits [B,Q,C+1], pred_masks [B,Q,ceil(H/4),ceil(W/4)] (logits), aux_outputs; in eval
        mode also class_log_probs [B,Q,C+1] (FC-CLIP's in/out-of-vocabulary ensemble, void last) and
        query_embeddings [B,Q,D]: each query's CLIP image embedding that the out-of-vocabulary classifier
        used (the tower's embedding of its crop, or its mask-pooled dense features; zeros for a query
        without a crop).
        """
        batch, _, height, width = images.shape
        x = (images - self.pixel_mean) / self.pixel_std
        pad_h = math.ceil(height / SIZE_DIVISIBILITY) * SIZE_DIVISIBILITY - height
        pad_w = math.ceil(width / SIZE_DIVISIBILITY) * SIZE_DIVISIBILITY - width
        x = F.pad(x, (0, pad_w, 0, pad_h))
        features = self.backbone(x)
        if self.side_adapter is not None:
            features = {**features, **self.side_adapter(x)}
        classifier = torch.cat([text.class_embeddings, F.normalize(self.void_embedding.weight, dim=-1)]).to(x.dtype)
        tokens, padding = text.prompt_tokens, text.prompt_padding
        if tokens is not None and tokens.shape[0] != batch:
            tokens, padding = tokens.expand(batch, -1, -1), padding.expand(batch, -1)
        out = self.head(features, classifier, text.num_templates, tokens, padding)
        if not self.training:
            settings = self.cfg.ensemble
            if settings.out_vocabulary == "crop":
                ensemble = crop_ensemble(
                    out["pred_logits"],
                    out["pred_masks"],
                    x,
                    self.crop_encoder,
                    classifier,
                    self.backbone.logit_scale,
                    text.num_templates,
                    text.seen_mask,
                    settings.alpha,
                    settings.beta,
                    settings.crop_size,
                    max_crops=settings.max_crops,
                    unseen_rule=settings.unseen_rule,
                    zoom=settings.crop_zoom,
                    min_side=settings.crop_min_side,
                )
                embeddings = ensemble["crop_embeddings"]
            else:
                ensemble = fcclip_ensemble(
                    out["pred_logits"],
                    out["pred_masks"],
                    features["clip_vis_dense"],
                    self.backbone.visual_prediction,
                    classifier,
                    self.backbone.logit_scale,
                    text.num_templates,
                    text.seen_mask,
                    settings.alpha,
                    settings.beta,
                    settings.on_valid_mask,
                    settings.unseen_rule,
                )
                embeddings = ensemble["pooled_clip_feature"]
            out["class_log_probs"] = ensemble["class_log_probs"]
            out["query_embeddings"] = embeddings
        mask_h, mask_w = math.ceil(height / 4), math.ceil(width / 4)
        out["pred_masks"] = out["pred_masks"][..., :mask_h, :mask_w]
        for aux in out["aux_outputs"]:
            aux["pred_masks"] = aux["pred_masks"][..., :mask_h, :mask_w]
        del out["mask_features"]
        return out


def build_segmenter(cfg: ModelConfig) -> PMPSegmenter:
    """A segmenter from its config; CLIP weights from cfg.clip.pretrained (None: random, e.g. before a
    checkpoint is loaded)."""
    clip_model, tokenizer = create_clip(cfg.clip)
    backbone = ClipBackbone(clip_model, frozen=cfg.clip.frozen)
    text_encoder = ClipTextEncoder(clip_model, tokenizer, cfg.clip.templates, frozen=cfg.clip.frozen)
    crop_backbone = None
    if cfg.ensemble.crop_tower:  # its weights come with the checkpoint (ship_model --crop-tower)
        crop_backbone = ClipBackbone(create_clip(dataclasses.replace(cfg.clip, pretrained=None))[0], frozen=True)
    return PMPSegmenter(cfg, backbone, text_encoder, crop_backbone)


def load_segmenter(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[PMPSegmenter, ModelConfig]:
    """Rebuild a segmenter from one checkpoint file (its config and all weights, CLIP included).

    Raises pmp_ros.model.checkpoint.CheckpointError (missing, corrupt, mismatched file) or
    pmp_ros.model.clip.ModelLoadError (unknown CLIP architecture)."""
    state_dict, cfg, _ = read_checkpoint(path)
    with weights_loaded_after():
        segmenter = build_segmenter(dataclasses.replace(cfg, clip=dataclasses.replace(cfg.clip, pretrained=None)))
    segmenter.cfg = cfg
    load_state_strict(segmenter, state_dict)
    return segmenter.to(device).eval(), cfg
