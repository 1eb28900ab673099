"""The per-frame image path of a PMPSegmenter as one module with tensor inputs only: what is exported to ONNX.

Text is encoded once per instruction in PyTorch (PMPSegmenter.encode_text); its TextFeatures become the
graph's text inputs (`text_tensors`), the same for every frame until the prompts change. The synonym layout
(TextFeatures.num_templates, Python ints) enters as a bool [C,K] membership tensor, which
classification_logits accepts in place of the counts, so the number of classes and synonyms is a dynamic
axis of the graph.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from pmp_ros.model.segmenter import PMPSegmenter, TextFeatures

IMAGE_INPUT = "images"
CLASS_INPUTS = ("class_embeddings", "class_synonyms", "seen_mask")
PROMPT_INPUTS = ("prompt_tokens", "prompt_padding")  # only for a model with prompt attention (PMP)
# The segmenter's eval outputs that Predictor's post-processing reads, under the segmenter's own names.
REQUIRED_OUTPUTS = ("class_log_probs", "pred_masks")
OPTIONAL_OUTPUTS = ("query_embeddings",)


class ImagePathGraph(nn.Module):
    """PMPSegmenter.forward in eval mode (CLIP image tower, pixel decoder, transformer decoder with PMP,
    classifier and ensemble) called with tensors only, returning a tuple.

    forward(images [1,3,H,W] float RGB in [0,1] at the exported size, class_embeddings [K,D],
    class_synonyms bool [C,K] (row c: the synonym rows of class c), seen_mask [C] float,
    prompt_tokens [1,T,W_t], prompt_padding bool [1,T] (True = padding); the last two only for a PMP model)
    -> the segmenter's outputs named by `output_names`: class_log_probs [1,Q,C+1], pred_masks
    [1,Q,ceil(H/4),ceil(W/4)] (mask logits) and, where the segmenter gives them, query_embeddings [1,Q,D].
    """

    def __init__(self, segmenter: PMPSegmenter, output_names: tuple[str, ...]):
        super().__init__()
        self.segmenter = segmenter
        self.output_names = output_names
        self.eval()

    def forward(
        self,
        images: Tensor,
        class_embeddings: Tensor,
        class_synonyms: Tensor,
        seen_mask: Tensor,
        prompt_tokens: Tensor | None = None,
        prompt_padding: Tensor | None = None,
    ) -> tuple[Tensor, ...]:
        text = TextFeatures(class_embeddings, class_synonyms, seen_mask, prompt_tokens, prompt_padding)
        out = self.segmenter(images, text)
        return tuple(out[name] for name in self.output_names)


def input_names(pmp: bool) -> tuple[str, ...]:
    """The graph's input names, in order, for a model with (pmp=True) or without prompt attention."""
    return (IMAGE_INPUT, *CLASS_INPUTS, *(PROMPT_INPUTS if pmp else ()))


def output_names(eval_outputs: Mapping[str, object]) -> tuple[str, ...]:
    """The graph's outputs, given the segmenter's eval outputs on an example: REQUIRED_OUTPUTS, then those of
    OPTIONAL_OUTPUTS it produces."""
    return REQUIRED_OUTPUTS + tuple(name for name in OPTIONAL_OUTPUTS if name in eval_outputs)


def synonym_membership(num_templates: tuple[int, ...], device: torch.device | str = "cpu") -> Tensor:
    """Synonyms per class (len C, sum K) -> bool [C,K], True where synonym row k belongs to class c."""
    counts = torch.tensor(num_templates, dtype=torch.long)
    class_of_row = torch.repeat_interleave(torch.arange(len(num_templates)), counts)  # [K]
    return (class_of_row[None, :] == torch.arange(len(num_templates))[:, None]).to(device)


def text_tensors(text: TextFeatures, pmp: bool) -> dict[str, Tensor]:
    """TextFeatures (one prompt list shared by the batch) -> the graph's text inputs by name, float32 and
    bool, on the text's device. A PMP graph needs prompt tokens (Predictor.set_prompts always has some)."""
    embeddings = text.class_embeddings.float()
    tensors = {
        "class_embeddings": embeddings,
        "class_synonyms": synonym_membership(text.num_templates, embeddings.device),
        "seen_mask": text.seen_mask.float(),
    }
    if pmp:
        if text.prompt_tokens is None:
            raise ValueError("the graph of a PMP model needs prompt tokens: encode the text with a prompt")
        if text.prompt_tokens.shape[0] != 1:
            raise ValueError(f"the graph takes one prompt list shared by the batch, got {text.prompt_tokens.shape[0]}")
        tensors["prompt_tokens"] = text.prompt_tokens.float()
        tensors["prompt_padding"] = text.prompt_padding
    return tensors
