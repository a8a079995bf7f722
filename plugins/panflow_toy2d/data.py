"""2-D datasets with known ground truth: 8 Gaussians, two moons, checkerboard, Gaussian mixture.

Each :class:`Toy2D` draws ``(x [N, 2], mode [N])``, assigns points to modes (−1 = off every
mode) and, where it is known in closed form, evaluates the exact log-density ``log p(x) [N]``.
"""

from __future__ import annotations

import math

import torch

from panflow import DataBundle, DataError, DatasetOptions, Samples


class Toy2D:
    name = "toy"
    num_modes = 1
    has_density = False

    def sample(self, n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def mode_of(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def mode_weights(self) -> torch.Tensor:
        return torch.full((self.num_modes,), 1.0 / self.num_modes, dtype=torch.float64)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        raise DataError(f"the density of '{self.name}' is not known in closed form")


class GaussianMixture2D(Toy2D):
    """Σ_k w_k N(μ_k, Σ_k): exact density; a point belongs to mode k when its squared
    Mahalanobis distance to the nearest component is below the 99% χ²(2) quantile."""

    has_density = True
    CHI2_99 = -2 * math.log(0.01)

    def __init__(self, name: str, means, covs, weights=None):
        self.name = name
        self.means = torch.as_tensor(means, dtype=torch.float64)
        self.covs = torch.as_tensor(covs, dtype=torch.float64)
        k = self.means.shape[0]
        self.weights = torch.full((k,), 1.0 / k, dtype=torch.float64) if weights is None else \
            torch.as_tensor(weights, dtype=torch.float64)
        self.num_modes = k
        self.chol = torch.linalg.cholesky(self.covs)
        self.prec = torch.linalg.inv(self.covs)

    def mode_weights(self):
        return self.weights

    def sample(self, n, g):
        mode = torch.multinomial(self.weights, n, replacement=True, generator=g)
        z = torch.randn(n, 2, generator=g, dtype=torch.float64)
        x = self.means[mode] + torch.einsum("nij,nj->ni", self.chol[mode], z)
        return x.float(), mode

    def _mahalanobis(self, x):
        d = x.double()[:, None, :] - self.means[None]
        return torch.einsum("nki,kij,nkj->nk", d, self.prec, d)

    def log_prob(self, x):
        m = self._mahalanobis(x)
        logdet = torch.logdet(self.covs)
        comp = -0.5 * m - 0.5 * logdet[None] - math.log(2 * math.pi) + self.weights.log()[None]
        return torch.logsumexp(comp, dim=1)

    def mode_of(self, x):
        m = self._mahalanobis(x)
        best, k = m.min(dim=1)
        return torch.where(best <= self.CHI2_99, k, torch.full_like(k, -1))


def eight_gaussians() -> GaussianMixture2D:
    ang = torch.arange(8, dtype=torch.float64) * math.pi / 4
    means = 2.0 * torch.stack([ang.cos(), ang.sin()], 1)
    return GaussianMixture2D("8gaussians", means, torch.eye(2, dtype=torch.float64).expand(8, 2, 2) * 0.15 ** 2)


def gaussian_mixture() -> GaussianMixture2D:
    """Five anisotropic components with unequal weights (fixed, seed-free definition)."""
    means = [[-1.5, -1.0], [1.5, -1.2], [0.0, 1.6], [-1.8, 1.4], [1.6, 1.5]]
    covs, angles, scales = [], [0.3, -0.8, 1.2, 0.0, 2.0], [(0.45, 0.15), (0.3, 0.3), (0.5, 0.12), (0.2, 0.35), (0.25, 0.1)]
    for a, (s1, s2) in zip(angles, scales):
        r = torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]], dtype=torch.float64)
        covs.append(r @ torch.diag(torch.tensor([s1 ** 2, s2 ** 2], dtype=torch.float64)) @ r.T)
    return GaussianMixture2D("gmm", means, torch.stack(covs), [0.3, 0.25, 0.2, 0.15, 0.1])


class TwoMoons(Toy2D):
    """Two interleaved half circles (radius 1) with Gaussian noise, centred and scaled ×1.5."""

    name, num_modes, noise, scale = "moons", 2, 0.08, 1.5

    def sample(self, n, g):
        mode = torch.randint(0, 2, (n,), generator=g)
        theta = torch.rand(n, generator=g, dtype=torch.float64) * math.pi
        upper = torch.stack([theta.cos(), theta.sin()], 1)
        lower = torch.stack([1 - theta.cos(), 0.5 - theta.sin()], 1)
        x = torch.where(mode[:, None] == 0, upper, lower)
        x = x + self.noise * torch.randn(n, 2, generator=g, dtype=torch.float64)
        return ((x - torch.tensor([0.5, 0.25], dtype=torch.float64)) * self.scale).float(), mode

    def mode_of(self, x):
        p = x.double() / self.scale + torch.tensor([0.5, 0.25], dtype=torch.float64)
        d = torch.stack([_half_circle_distance(p, upper=True),
                         _half_circle_distance(p - torch.tensor([1.0, 0.5], dtype=torch.float64), upper=False)], 1)
        best, k = d.min(dim=1)
        return torch.where(best <= 3 * self.noise, k, torch.full_like(k, -1))


def _half_circle_distance(q: torch.Tensor, upper: bool) -> torch.Tensor:
    """Distance from points ``q [N, 2]`` to the unit half circle above (or below) the x axis."""
    on_side = q[:, 1] >= 0 if upper else q[:, 1] <= 0
    ends = torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=torch.float64)
    to_end = torch.cdist(q, ends).min(dim=1).values
    return torch.where(on_side, (q.norm(dim=1) - 1).abs(), to_end)


class Checkerboard(Toy2D):
    """Uniform on the 8 black unit squares of a 4×4 board on [−2, 2]²: density 1/8 there."""

    name, num_modes, has_density = "checkerboard", 8, True

    def sample(self, n, g):
        mode = torch.randint(0, 8, (n,), generator=g)
        row, colpair = mode // 2, mode % 2
        col = 2 * colpair + (row % 2)
        u = torch.rand(n, 2, generator=g, dtype=torch.float64)
        x = torch.stack([col + u[:, 0], row + u[:, 1]], 1) - 2.0
        return x.float(), mode

    def mode_of(self, x):
        p = x.double() + 2.0
        col, row = p[:, 0].floor().long(), p[:, 1].floor().long()
        ok = (col >= 0) & (col < 4) & (row >= 0) & (row < 4) & ((col - row) % 2 == 0)
        return torch.where(ok, row * 2 + col // 2, torch.full_like(col, -1))

    def log_prob(self, x):
        inside = self.mode_of(x) >= 0
        return torch.where(inside, torch.full(inside.shape, -math.log(8.0), dtype=torch.float64),
                           torch.full(inside.shape, -math.inf, dtype=torch.float64))


DATASETS = {"8gaussians": eight_gaussians, "moons": TwoMoons, "checkerboard": Checkerboard,
            "gmm": gaussian_mixture}

TRAIN_N, VAL_N = 100_000, 10_000


def check_options(opts: DatasetOptions) -> None:
    """Refuse data options the toy datasets do not read (naming the config key)."""
    unknown = sorted(set(opts.options) - {"n_train", "n_val"})
    if unknown:
        raise DataError(f"unknown toy2d data option {', '.join('data.options.' + k for k in unknown)}; "
                        "known: data.options.n_train, data.options.n_val")


def load_toy(name: str, opts: DatasetOptions) -> DataBundle:
    """Draw the train and validation sets of toy dataset ``name`` (seeded by ``opts.seed``)."""
    if opts.path:
        raise DataError("toy2d datasets are generated; --data is not supported (use the image or text domains "
                        "for your own files)")
    check_options(opts)
    toy = DATASETS[name]()
    n_train = int(opts.options.get("n_train", TRAIN_N))
    n_val = int(opts.options.get("n_val", VAL_N))
    g = torch.Generator().manual_seed(opts.seed)
    xt, _ = toy.sample(n_train, g)
    xv, _ = toy.sample(n_val, g)
    return DataBundle(Samples(xt), Samples(xv), {"toy": name, "n_train": n_train,
                                                  "n_val": n_val, "generator_seed": opts.seed})
