"""Block attention for block diffusion (Arriola et al. 2025, BD3-LM, arXiv:2503.09573).

A sequence of length L is cut into blocks of ``B`` tokens (block of position ``l`` = ``l // B``;
the last block may be shorter). Tokens are either *clean* (given or finished) or *noisy* (being
denoised). One rule gives every attention pattern block diffusion needs:

- a clean query sees clean keys of its own and earlier blocks (block-causal);
- a noisy query sees noisy keys of its own block (bidirectional) and clean keys of earlier blocks;
- a clean query never sees a noisy key.

Training runs the two streams ``[z_t, x]`` (length 2L) through the model in one call
(the vectorised two-stream trick); sampling runs ``[finished tokens, current block]``, or only the
new tokens against a :class:`KVCache` of the finished ones. ``B = 1`` is an autoregressive model
(each masked token sees the clean tokens before it); ``B = L`` is plain masked diffusion.

A backbone opts in by accepting ``model(z, t, cond, attention=TokenAttention(...))``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def block_allow(q_pos: torch.Tensor, q_clean: torch.Tensor, k_pos: torch.Tensor, k_clean: torch.Tensor,
                block_size: int) -> torch.Tensor:
    """``[Lq, Lk]`` bool, True where a query may attend a key (the rule in the module docstring).

    ``q_pos [Lq]`` / ``k_pos [Lk]``: absolute positions; ``q_clean`` / ``k_clean``: bool, same shapes.
    """
    qb, kb = (q_pos // block_size)[:, None], (k_pos // block_size)[None, :]
    qc, kc = q_clean[:, None], k_clean[None, :]
    return (qc & kc & (kb <= qb)) | (~qc & kc & (kb < qb)) | (~qc & ~kc & (kb == qb))


@dataclass
class TokenAttention:
    """What a block-diffusion call tells the backbone beyond ``(z, t, cond)``.

    ``positions [Lq]``: absolute position of each input token (rotary / learned embeddings);
    ``allow [Lq, Lk]``: the attention pattern, keys = cached tokens first, then the inputs;
    ``cache``: keys/values of earlier clean tokens (None: nothing cached); ``commit``: how many
    leading input tokens are clean and finished, so their keys/values join the cache.
    """

    positions: torch.Tensor
    allow: torch.Tensor
    cache: KVCache | None = None
    commit: int = 0

    def layer(self, i: int):
        """The per-layer cache slot a transformer block extends its keys/values with (or None)."""
        return None if self.cache is None else _Slot(self.cache, i, self.commit)


class KVCache:
    """Per-layer keys and values ``[B, H, Lc, d]`` of finished clean tokens (block diffusion sampling)."""

    def __init__(self) -> None:
        self.k: dict[int, torch.Tensor] = {}
        self.v: dict[int, torch.Tensor] = {}
        self.length = 0  # tokens cached

    def positions(self, device) -> torch.Tensor:
        return torch.arange(self.length, device=device)


class _Slot:
    def __init__(self, cache: KVCache, layer: int, commit: int):
        self.cache, self.layer, self.commit = cache, layer, commit

    def extend(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Prepend the cached keys/values to ``k, v [B, H, Lq, d]``; keep the first ``commit`` new ones."""
        c = self.cache
        pk, pv = c.k.get(self.layer), c.v.get(self.layer)
        ka = k if pk is None else torch.cat([pk, k], 2)
        va = v if pv is None else torch.cat([pv, v], 2)
        if self.commit:
            n = (0 if pk is None else pk.shape[2]) + self.commit
            c.k[self.layer], c.v[self.layer] = ka[:, :, :n], va[:, :, :n]
        return ka, va


def two_stream(z: torch.Tensor, x: torch.Tensor, block_size: int) -> tuple[torch.Tensor, TokenAttention]:
    """Training input ``[z_t, x]`` (``[B, 2L]``) and its attention; the model's first L outputs are the
    predictions for the noisy stream, each conditioned on the clean blocks before its own."""
    length = x.shape[1]
    pos = torch.arange(length, device=x.device)
    pos2 = torch.cat([pos, pos])
    clean = torch.cat([torch.zeros(length, dtype=torch.bool, device=x.device),
                       torch.ones(length, dtype=torch.bool, device=x.device)])
    return torch.cat([z, x], 1), TokenAttention(pos2, block_allow(pos2, clean, pos2, clean, block_size))


def context_call(clean: torch.Tensor, noisy: torch.Tensor, start: int, block_size: int,
                 cache: KVCache | None) -> tuple[torch.Tensor, TokenAttention]:
    """Sampling input: clean tokens ``[B, P]`` at positions ``start - P .. start - 1`` (not yet cached)
    followed by the noisy block ``[B, Lb]`` at ``start ..``; with a cache, keys of the ``start - P``
    tokens before them come from it."""
    dev = noisy.device
    p, lb = clean.shape[1], noisy.shape[1]
    cached = cache.length if cache is not None else 0
    if cached + p != start:
        raise ValueError(f"the cache holds {cached} tokens and {p} are given, but the block starts at {start}")
    q_pos = torch.arange(start - p, start + lb, device=dev)
    q_clean = torch.arange(p + lb, device=dev) < p
    k_pos = torch.arange(0, start + lb, device=dev) if cache is not None else q_pos
    k_clean = k_pos < start
    allow = block_allow(q_pos, q_clean, k_pos, k_clean, block_size)
    return torch.cat([clean, noisy], 1), TokenAttention(q_pos, allow, cache, p if cache is not None else 0)


__all__ = ["KVCache", "TokenAttention", "block_allow", "context_call", "two_stream"]
