"""PMP block: mask-proposal queries cross-attend to the prompt's CLIP text tokens (arXiv 2412.10292).

Pre-norm residual form, x = x + gate * Attn(norm(x) + query_pos, proj(text)), so a zero output projection
makes the block the exact identity: a converted FC-CLIP model starts with its own proposals, and a
freshly built PMP model equals its prompt-free twin until the block is trained.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class PromptAttentionLayer(nn.Module):
    """Queries [B, Q, C] attend to prompt tokens [B, T, W_t] projected to C."""

    def __init__(self, d_model: int, nhead: int, text_width: int) -> None:
        super().__init__()
        self.text_proj = nn.Linear(text_width, d_model)
        self.text_norm = nn.LayerNorm(d_model)
        self.norm = nn.LayerNorm(d_model)
        self.attn = nn.MultiheadAttention(d_model, nhead, batch_first=True)
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        nn.init.zeros_(self.attn.out_proj.weight)
        nn.init.zeros_(self.attn.out_proj.bias)

    def forward(
        self, tgt: Tensor, query_pos: Tensor, prompt_tokens: Tensor | None, prompt_padding: Tensor | None
    ) -> Tensor:
        """tgt, query_pos: [B, Q, C]; prompt_tokens: [B, T, W_t] or None (identity);
        prompt_padding: bool [B, T], True = padding, or None (all valid). Returns [B, Q, C].
        An image whose tokens are all padding is left unchanged."""
        if prompt_tokens is None:
            return tgt
        text = self.text_norm(self.text_proj(prompt_tokens.to(tgt.dtype)))
        if prompt_padding is None:
            prompt_padding = torch.zeros(text.shape[:2], dtype=torch.bool, device=text.device)
        has_text = ~prompt_padding.all(-1)  # [B]
        # A fully padded row would give NaN (softmax over nothing), also in the backward pass: unmask it
        # and gate its output to zero instead (no host-side branching on values).
        padding = prompt_padding & has_text[:, None]
        out = self.attn(self.norm(tgt) + query_pos, text, text, key_padding_mask=padding, need_weights=False)[0]
        return tgt + out * has_text[:, None, None].to(out.dtype)
