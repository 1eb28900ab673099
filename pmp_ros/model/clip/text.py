"""ClipTextEncoder: CLIP text tower giving class embeddings (for classifiers) and prompt tokens (for PMP).

Both outputs depend only on strings, and a robot asks the same vocabulary and instructions frame after
frame, so with a frozen tower they are computed once and cached (bounded LRU, keyed by the strings and
the tower's device and dtype).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from open_clip.transformer import text_global_pool
from torch import nn

CLASS_CACHE_PER_ENTRY = 128  # a vocabulary has many names, an instruction few prompts


class ClipTextEncoder(nn.Module):
    """Text tower of an open_clip ``CLIP`` (token embedding, causal transformer, ln_final, projection).

    Args:
        open_clip_model: an open_clip ``CLIP`` (built-in causal text transformer; HF text towers are not
            supported).
        tokenizer: open_clip tokenizer, ``tokenizer(list[str]) -> int64 [N, L]`` with L the context length.
        templates: prompt templates with one ``{}`` for the class name, averaged over.
        frozen: no gradients, eval mode kept, outputs cached.
        cache_size: cached prompt lists (prompt tokens); class embeddings are cached per name, up to
            CLASS_CACHE_PER_ENTRY times as many.
        batch_size: texts per tower call (bounds memory for large vocabularies).

    Attributes:
        width: W_t, the transformer width (prompt token feature size).
        embed_dim: D, the joint embedding size.
        tower_calls: number of text-tower forward passes so far (tests use it to prove cache hits).
    """

    def __init__(
        self,
        open_clip_model: nn.Module,
        tokenizer: Any,
        templates: Sequence[str],
        frozen: bool = True,
        cache_size: int = 32,
        batch_size: int = 256,
    ):
        super().__init__()
        if hasattr(open_clip_model, "text") or not hasattr(open_clip_model, "token_embedding"):
            raise ValueError(
                f"unsupported CLIP text tower in {type(open_clip_model).__name__}: ClipTextEncoder needs "
                "open_clip's built-in CLIP text transformer"
            )
        self.token_embedding = open_clip_model.token_embedding
        self.positional_embedding = open_clip_model.positional_embedding
        self.transformer = open_clip_model.transformer
        self.ln_final = open_clip_model.ln_final
        self.text_projection = open_clip_model.text_projection
        self.register_buffer("attn_mask", open_clip_model.attn_mask, persistent=False)
        self.pool_type = open_clip_model.text_pool_type
        self.eos_id = getattr(open_clip_model, "text_eos_id", None)

        self.tokenizer = tokenizer
        self.context_length = self.positional_embedding.shape[0]
        probe = tokenizer(["probe"])
        if probe.shape[-1] != self.context_length:
            raise ValueError(
                f"tokenizer context length {probe.shape[-1]} != text tower context length {self.context_length}"
            )
        self.templates = _checked_templates(templates)
        self.width = self.transformer.width
        proj = self.text_projection
        if isinstance(proj, nn.Linear):
            self.embed_dim = proj.out_features
        else:
            self.embed_dim = proj.shape[1] if proj is not None else self.width
        self.frozen = frozen
        self.cache_size = cache_size
        self.batch_size = batch_size
        self.tower_calls = 0
        self._class_cache: OrderedDict[tuple, torch.Tensor] = OrderedDict()
        self._prompt_cache: OrderedDict[tuple, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
        # New weights make every cached output stale.
        self.register_load_state_dict_post_hook(lambda module, incompatible: module.clear_cache())
        if frozen:
            self.requires_grad_(False)
        self.train(self.training)

    def train(self, mode: bool = True) -> ClipTextEncoder:
        return super().train(mode and not self.frozen)

    def clear_cache(self) -> None:
        self._class_cache.clear()
        self._prompt_cache.clear()

    def class_embeddings(self, names: Sequence[str], templates: Sequence[str] | None = None) -> torch.Tensor:
        """names (K) -> float [K,D]: per name, normalise each template's embedding, average, normalise.

        templates: None = the encoder's own; others are checked like the constructor's. Cached per name, so
        a new instruction encodes only its new names, not the whole context vocabulary again.
        """
        templates = self.templates if templates is None else _checked_templates(templates)
        keys = [self._key([name]) + (templates,) for name in names]
        missing = list(dict.fromkeys(name for name, key in zip(names, keys) if key not in self._class_cache))
        fresh = dict(zip(missing, self._encode_classes(missing, templates))) if missing else {}
        rows = []
        for name, key in zip(names, keys):
            if name in fresh:
                self._store(self._class_cache, key, fresh[name])
                rows.append(fresh[name])
            else:
                self._class_cache.move_to_end(key)
                rows.append(self._class_cache[key])
        if not rows:
            return self.token_embedding.weight.new_zeros(0, self.embed_dim)
        return torch.stack(rows)

    def _encode_classes(self, names: list[str], templates: tuple[str, ...]) -> torch.Tensor:
        """[len(names), D] template-averaged, normalised embeddings (runs the tower)."""
        texts = [template.format(name) for name in names for template in templates]
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            tokens = self._tokenize(texts)
            features = self._encode(tokens)  # [K*T, L, W_t]
            pooled = text_global_pool(features, tokens, self.pool_type, eos_token_id=self.eos_id)
            embeddings = F.normalize(self._project(pooled), dim=-1)
            embeddings = embeddings.reshape(len(names), len(templates), self.embed_dim).mean(dim=1)
            return F.normalize(embeddings, dim=-1)

    def prompt_tokens(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """prompts (P) -> (tokens float [P,L,W_t], valid bool [P,L]).

        Per-token features after ln_final (before the projection). Valid positions are those up to and
        including each prompt's end-of-text token; L is trimmed to the longest prompt, since positions after
        every prompt's end carry no text.
        """
        key = self._key(prompts)
        if key in self._prompt_cache:
            self._prompt_cache.move_to_end(key)
            return self._prompt_cache[key]
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            tokens = self._tokenize(list(prompts))
            eot = self._eot_positions(tokens)  # [P]
            length = int(eot.max()) + 1 if len(prompts) else 0
            features = self._encode(tokens)[:, :length]
            valid = torch.arange(length, device=tokens.device)[None, :] <= eot[:, None]
        result = (features, valid)
        self._store(self._prompt_cache, key, result)
        return result

    def _key(self, strings: Sequence[str]) -> tuple:
        weight = self.token_embedding.weight
        return (tuple(strings), weight.device, weight.dtype)

    def _store(self, cache: OrderedDict, key: tuple, value: Any) -> None:
        # Outputs that carry gradients belong to one training step: never cache them.
        if not self.frozen:
            return
        cache[key] = value
        limit = self.cache_size * (CLASS_CACHE_PER_ENTRY if cache is self._class_cache else 1)
        while len(cache) > limit:
            cache.popitem(last=False)

    def _tokenize(self, texts: list[str]) -> torch.Tensor:
        return self.tokenizer(texts).to(self.token_embedding.weight.device)

    def _eot_positions(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens int64 [N,L] -> [N] index of the end-of-text token (same rule as the tower's pooling)."""
        if self.pool_type == "eos" and self.eos_id is not None:
            return (tokens == self.eos_id).int().argmax(dim=-1)
        return tokens.argmax(dim=-1)  # open_clip's CLIP tokenizer: end-of-text has the largest id

    def _encode(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens int64 [N,L] -> per-token features [N,L,W_t] after ln_final, in chunks of batch_size."""
        chunks = []
        for start in range(0, tokens.shape[0], self.batch_size):
            self.tower_calls += 1
            chunk = tokens[start : start + self.batch_size]
            dtype = self.token_embedding.weight.dtype
            x = self.token_embedding(chunk) + self.positional_embedding.to(dtype)
            x = self.transformer(x, attn_mask=self.attn_mask)
            chunks.append(self.ln_final(x))
        if not chunks:
            return self.token_embedding.weight.new_zeros(0, tokens.shape[1], self.width)
        return torch.cat(chunks)

    def _project(self, pooled: torch.Tensor) -> torch.Tensor:
        """pooled [N,W_t] -> [N,D] through the text projection (a Linear, a matrix, or none)."""
        if isinstance(self.text_projection, nn.Linear):
            return self.text_projection(pooled)
        if self.text_projection is None:
            return pooled
        return pooled @ self.text_projection


def _checked_templates(templates: Sequence[str]) -> tuple[str, ...]:
    if not templates or any(not isinstance(t, str) or t.count("{}") != 1 for t in templates):
        raise ValueError(f"templates must be non-empty and each hold exactly one '{{}}': {list(templates)}")
    return tuple(templates)
