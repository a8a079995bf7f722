import torch

from panflow import AdaLNBlock, Rotary
from panflow.nn import apply_rotary


def test_rotary_scores_depend_only_on_relative_position():
    torch.manual_seed(0)
    d, length = 8, 12
    cos, sin = Rotary(d)(length)
    q, k = torch.randn(d), torch.randn(d)
    qs = apply_rotary(q.expand(1, 1, length, d), cos, sin)[0, 0]  # the same vector at every position
    ks = apply_rotary(k.expand(1, 1, length, d), cos, sin)[0, 0]
    scores = qs @ ks.T  # [L, L]
    for offset in (-3, 0, 1, 5):
        diag = torch.diagonal(scores, offset)
        assert torch.allclose(diag, diag[0].expand_as(diag), atol=1e-5)
    assert not torch.allclose(torch.diagonal(scores, 0)[0], torch.diagonal(scores, 1)[0])
    assert torch.allclose(qs.norm(dim=-1), q.norm().expand(length), atol=1e-5)  # a rotation


def test_block_with_rotary_is_permutation_sensitive_without_it_equivariant():
    torch.manual_seed(0)
    blk = AdaLNBlock(16, 2)
    for p in blk.ada.parameters():  # open the adaLN-Zero gates
        torch.nn.init.normal_(p, std=0.5)
    x, c = torch.randn(2, 6, 16), torch.randn(2, 16)
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    rot = Rotary(8)(6)
    plain = blk(x, c)
    assert torch.allclose(blk(x[:, perm], c), plain[:, perm], atol=1e-5)
    assert not torch.allclose(blk(x[:, perm], c, rotary=rot), blk(x, c, rotary=rot)[:, perm], atol=1e-3)
