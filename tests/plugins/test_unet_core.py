"""The core UNet: rectangular inputs, any channel count, cond as dict or tensor, and the image
plugin's ``unet`` unchanged by the move into the core (reference: tests/plugins/data/unet_digits_reference.*,
computed with the pre-move code of commit be51965 on one thread)."""

import hashlib
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from panflow import DataSpec, UNet
from panflow_image.backbones.unet import build_unet

DATA = Path(__file__).parent / "data"


def test_image_unet_is_unchanged_by_the_move():
    spec = DataSpec("continuous", (1, 8, 8), num_classes=10)
    torch.manual_seed(0)
    fresh = build_unet(spec, channels=32, num_res=1)
    ref = json.loads((DATA / "unet_digits_reference.json").read_text())
    got = {k: [list(v.shape), hashlib.sha256(v.contiguous().numpy().tobytes()).hexdigest()[:16]]
           for k, v in fresh.state_dict().items()}
    assert list(got) == list(ref)          # same keys in the same (creation) order
    assert got == ref                      # same shapes and the same initial values
    # the reference output was computed with one intra-op thread on an AVX-512 CPU; the reduction
    # order of a convolution, hence its last bits, depends on the thread count and on the kernels the
    # CPU's instruction set selects (an AVX2-only AMD EPYC differs by up to 2.6e-6 on values of ~1.8),
    # so the output is held to float32 rounding, the weights above and the two cond paths exactly
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out, out_dict = _perturbed_output(spec)
    finally:
        torch.set_num_threads(threads)
    want = load_file(str(DATA / "unet_digits_reference.safetensors"))["out"]
    assert torch.equal(out, out_dict)
    assert torch.allclose(out, want, rtol=0, atol=2e-5), float((out - want).abs().max())


def _perturbed_output(spec):
    torch.manual_seed(0)
    m = build_unet(spec, channels=32, num_res=1).eval()
    g = torch.Generator().manual_seed(1)
    x, t = torch.randn(4, 1, 8, 8, generator=g), torch.rand(4, generator=g)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
        out = m(x, t, torch.tensor([0, 3, 9, 10]))
        out_dict = m(x, t, {"label": torch.tensor([0, 3, 9, 10])})
    return out, out_dict


def test_rectangular_any_channels_and_conditioning():
    torch.manual_seed(0)
    m = UNet(3, (16, 40), channels=16, mults=(1, 2, 2), num_res=1, attn_resolutions=(4,), heads=2, num_classes=5).eval()
    assert sum(isinstance(b, torch.nn.Module) and type(b).__name__ == "Attention2d" for b in m.modules()) >= 2
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.02 * torch.randn_like(p))
    x, t = torch.randn(2, 3, 16, 40), torch.rand(2)
    y = torch.tensor([1, 4])
    out = m(x, t, {"label": y})
    assert out.shape == x.shape
    assert torch.equal(out, m(x, t, y))
    assert not torch.allclose(out, m(x, t, {}))  # empty dict = the null label, which differs
    assert torch.equal(m(x, t, {}), m(x, t, None))
    with pytest.raises(ValueError, match="divisible by 4"):
        UNet(1, (30, 40), mults=(1, 2, 2))
