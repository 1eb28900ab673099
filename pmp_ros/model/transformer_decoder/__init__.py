"""Query decoder: Mask2Former masked attention + FC-CLIP class path + PMP prompt attention."""

from .decoder import MultiScaleMaskedTransformerDecoder
from .prompt_attention import PromptAttentionLayer

__all__ = ["MultiScaleMaskedTransformerDecoder", "PromptAttentionLayer"]
