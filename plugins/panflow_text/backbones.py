"""A transformer over tokens with adaLN time conditioning: bidirectional for masked diffusion,
causal for the autoregressive baseline. ``model(z [B, L], t [B], cond) -> logits [B, L, V]``."""

from __future__ import annotations

import torch
from torch import nn

from panflow import AdaLNBlock, AdaLNOutput, DataError, DataSpec, TimeEmbedding


class TokenTransformer(nn.Module):
    def __init__(self, vocab_size: int, max_len: int, dim: int = 256, depth: int = 6, heads: int = 4,
                 causal: bool = False, dropout: float = 0.0):
        super().__init__()
        self.vocab_size, self.max_len, self.causal = vocab_size, max_len, causal
        self.tok = nn.Embedding(vocab_size + 1, dim)  # + the mask (diffusion) / BOS (autoregressive) id
        self.pos = nn.Parameter(torch.randn(1, max_len, dim) * 0.02)
        self.time = TimeEmbedding(dim)
        self.blocks = nn.ModuleList([AdaLNBlock(dim, heads, dropout=dropout) for _ in range(depth)])
        self.out = AdaLNOutput(dim, vocab_size)
        nn.init.normal_(self.tok.weight, std=0.02)

    def forward(self, z: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        if z.shape[1] > self.max_len:
            raise DataError(f"sequence length {z.shape[1]} exceeds the model's maximum {self.max_len}")
        h = self.tok(z) + self.pos[:, : z.shape[1]]
        c = self.time(t)
        for blk in self.blocks:
            h = blk(h, c, causal=self.causal)
        return self.out(h, c)


def build_transformer(spec: DataSpec, dim: int = 256, depth: int = 6, heads: int = 4, causal: bool = False,
                      max_len: int | None = None, dropout: float = 0.0) -> TokenTransformer:
    length = spec.shape[0]
    max_len = max_len or length
    if length > max_len:
        raise DataError(f"data sequences of {length} tokens exceed the model's max_len {max_len}")
    return TokenTransformer(spec.vocab_size, max_len, dim, depth, heads, causal, dropout)
