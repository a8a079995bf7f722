"""The image evaluator checked against itself: its classifier, its features, its floor."""

import pytest
import torch

from panflow import DatasetOptions, Samples
from panflow_image.classifier import features, reference_classifier, shift
from panflow_image.data import load_digits
from panflow_image.evaluate import GaussianBaseline, notes, real_rows, reference, row_metrics
from panflow_image.metrics import conditional_accuracy, paired_halves

EPOCHS = 8  # about 0.975 held-out accuracy in a few seconds on one core; the benchmark trains 100 epochs


@pytest.fixture(scope="module")
def digits_ref(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("PANFLOW_CACHE", str(tmp_path_factory.mktemp("cache")))
    b = load_digits(DatasetOptions(val_fraction=0.3, seed=0))
    clf = reference_classifier(b.train, b.val, 10, b.meta["hash"], epochs=EPOCHS)
    yield b, reference(b, 10, None, 0, clf)
    mp.undo()


def _blur(x: torch.Tensor, sigma: float = 0.5) -> torch.Tensor:
    k = torch.exp(-torch.arange(-1.0, 2.0) ** 2 / (2 * sigma**2))
    k = (k[:, None] * k[None, :] / k.sum() ** 2)[None, None]
    return torch.nn.functional.conv2d(torch.nn.functional.pad(x, (1, 1, 1, 1), mode="replicate"), k)


@pytest.mark.slow
def test_fd_ranks_known_degradations(digits_ref):
    b, r = digits_ref
    assert r.info["val_accuracy"] >= 0.95
    floor, base = (row.metrics for row in real_rows(r, b.train, 10, seed=0))
    real = r.other.x
    g = torch.Generator().manual_seed(0)
    blurred = 0.7 * real + 0.3 * _blur(real)  # slightly blurred
    noised = (real + 0.1 * torch.randn(real.shape, generator=g)).clamp(0, 1)
    fd = [floor["fd"]] + [row_metrics(r, x, r.other.y, 0)["fd"] for x in (blurred, noised)] + [base["fd"]]
    assert fd == sorted(fd) and len(set(fd)) == 4, fd
    # the worse degradations lie outside the floor's own re-split interval: told apart from noise
    assert floor["fd_lo"] <= floor["fd"] <= floor["fd_hi"] < fd[2] < fd[3], (floor, fd)


@pytest.mark.slow
def test_conditional_accuracy_of_real_held_out_is_the_classifier_accuracy(digits_ref):
    b, r = digits_ref
    again, info = reference_classifier(b.train, b.val, 10, b.meta["hash"], epochs=EPOCHS)  # from the cache
    assert "cached_at" in info and info["val_accuracy"] == r.info["val_accuracy"]
    assert conditional_accuracy(again, b.val) == info["val_accuracy"]
    assert real_rows(r, b.train, 10, 0)[0].metrics["cond_acc"] == conditional_accuracy(r.net, r.other)
    wrong = Samples(b.val.x, (b.val.y + 1) % 10)
    assert conditional_accuracy(again, wrong) < 0.05


@pytest.mark.slow
def test_features_are_z_scored_with_training_statistics(digits_ref):
    b, r = digits_ref
    f = features(r.net, b.train.x)
    assert f.shape == (len(b.train), 64)
    assert f.mean(0).abs().max() < 1e-4 and (f.std(0) - 1).abs().max() < 1e-3
    base = GaussianBaseline(b.train, 10).sample(r.ref.y, len(r.ref), 0)
    assert features(r.net, base).mean(0).abs().max() > 0.1  # held-out and generated sets are not re-centred


def test_paired_halves_are_disjoint_and_class_matched():
    y = torch.tensor([0] * 7 + [1] * 4 + [2] * 1)
    a, b = paired_halves(y, seed=3)
    assert len(a) == len(b) == 3 + 2 and torch.equal(y[a], y[b])
    assert not set(a.tolist()) & set(b.tolist())
    a2, _ = paired_halves(y, n=2, seed=3)
    assert len(a2) == 2 and not torch.equal(paired_halves(y, seed=4)[0], a)


def test_shift_moves_each_image_by_its_own_offset():
    x = torch.zeros(64, 1, 5, 5)
    x[:, 0, 2, 2] = 1.0
    out = shift(x, 1, torch.Generator().manual_seed(0))
    pos = out.flatten(1).argmax(1)
    rows, cols = pos // 5, pos % 5
    assert torch.equal(out.flatten(1).sum(1), torch.ones(64))  # moved, not wrapped or lost (within the margin)
    assert rows.min() == 1 and rows.max() == 3 and cols.min() == 1 and cols.max() == 3
    assert len(set(zip(rows.tolist(), cols.tolist()))) == 9  # all nine offsets occur: one offset per image


def test_weak_classifier_warns_in_the_score_card():
    assert not any("WARNING" in n for n in notes({"val_accuracy": 0.99, "n_val": 539}))
    assert any("WARNING" in n and "0.940" in n for n in notes({"val_accuracy": 0.94, "n_val": 539}))
