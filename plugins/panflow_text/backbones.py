"""A transformer over tokens with adaLN time conditioning: bidirectional for masked diffusion,
causal for the autoregressive baseline. ``model(z [B, L], t [B], cond) -> logits [B, L, V]``.

Positions are rotary by default: a bidirectional model with learned absolute embeddings must
first learn what "my neighbour" means and, on a small budget, barely uses its context (measured:
4.0 bits per masked byte even with 98% of the sequence visible after 1,000 steps). A causal model
gets part of that for free from its mask, so rotary positions also keep the AR baseline fair.
"""

from __future__ import annotations

import torch
from torch import nn

from panflow import (
    AdaLNBlock,
    AdaLNOutput,
    ContractError,
    DataError,
    DataSpec,
    Rotary,
    TimeEmbedding,
    TokenAttention,
    UnknownNameError,
)

POSITIONS = ("rotary", "learned")


class TokenTransformer(nn.Module):
    def __init__(self, vocab_size: int, max_len: int, dim: int = 256, depth: int = 6, heads: int = 4,
                 causal: bool = False, dropout: float = 0.0, position: str = "rotary", time: bool = False):
        super().__init__()
        if position not in POSITIONS:
            raise UnknownNameError("position encoding", position, POSITIONS)
        if dim % heads:
            raise DataError(f"dim {dim} must be divisible by heads {heads}")
        self.vocab_size, self.max_len, self.causal, self.use_time = vocab_size, max_len, causal, time
        self.tok = nn.Embedding(vocab_size + 1, dim)  # + the mask (diffusion) / BOS (autoregressive) id
        if position == "learned":
            self.pos = nn.Parameter(torch.randn(1, max_len, dim) * 0.02)
            self.rotary = None
        else:
            self.pos, self.rotary = None, Rotary(dim // heads)
        self.time = TimeEmbedding(dim)
        self.blocks = nn.ModuleList([AdaLNBlock(dim, heads, dropout=dropout) for _ in range(depth)])
        self.out = AdaLNOutput(dim, vocab_size)
        nn.init.normal_(self.tok.weight, std=0.02)

    def forward(self, z: torch.Tensor, t: torch.Tensor, cond: dict | None = None,
                attention: TokenAttention | None = None) -> torch.Tensor:
        """``attention`` (block diffusion, :mod:`panflow.blocks`): positions, attention pattern and
        key/value cache of the call; without it the model is bidirectional (or causal)."""
        if attention is None:
            length = z.shape[1]
            if length > self.max_len:
                raise DataError(f"sequence length {length} exceeds the model's maximum {self.max_len}")
            pos, allow = torch.arange(length, device=z.device), None
        else:
            if self.causal:
                raise ContractError("a causal transformer cannot take a block-attention pattern; build it with causal=false")
            if self.use_time:
                raise ContractError("block diffusion gives each block its own time; use a time-free transformer "
                                    "(model.options.time=false)")
            pos, allow = attention.positions, attention.allow
            if int(pos.max()) >= self.max_len:
                raise DataError(f"position {int(pos.max())} exceeds the model's maximum {self.max_len}")
        h = self.tok(z)
        if self.pos is not None:
            h = h + self.pos[0, pos]
        rot = None
        if self.rotary is not None:
            cos, sin = self.rotary(int(pos.max()) + 1)
            rot = (cos[pos], sin[pos])
        c = self.time(t if self.use_time else torch.zeros_like(t))
        for i, blk in enumerate(self.blocks):
            kv = None if attention is None else attention.layer(i)
            h = blk(h, c, causal=self.causal, rotary=rot, attn_mask=allow, kv=kv)
        return self.out(h, c)


def build_transformer(spec: DataSpec, dim: int = 256, depth: int = 6, heads: int = 4, causal: bool = False,
                      max_len: int | None = None, dropout: float = 0.0, position: str = "rotary",
                      time: bool = False) -> TokenTransformer:
    """``position``: ``rotary`` (default) or ``learned`` absolute. ``time`` (off by default) feeds t
    to the adaLN layers; masked diffusion needs no time input — the number of masks carries it
    (Sahoo et al. 2024), we measured no difference (3.26 vs 3.23 bits/byte after 1,000 steps) — and
    a time-free model lets the unmasking samplers reuse its output exactly when no token changed."""
    length = spec.shape[0]
    max_len = max_len or length
    if length > max_len:
        raise DataError(f"data sequences of {length} tokens exceed the model's max_len {max_len}")
    return TokenTransformer(spec.vocab_size, max_len, dim, depth, heads, causal, dropout, position, time)
