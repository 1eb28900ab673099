"""Query decoder: Mask2Former masked attention + FC-CLIP class path + PMP prompt attention."""

from pmp_ros.model.transformer_decoder.decoder import MultiScaleMaskedTransformerDecoder
from pmp_ros.model.transformer_decoder.prompt_attention import PromptAttentionLayer

__all__ = ["MultiScaleMaskedTransformerDecoder", "PromptAttentionLayer"]
