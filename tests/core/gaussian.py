"""Closed-form rectified flow for Gaussian data x1 ~ N(mu, diag(s²)) (test helper)."""

import math

import torch


class GaussianFlow:
    """Linear path: var_t = t² s² + (1 − t)²; v(x, t) = mu + (t s² − (1 − t)) / var_t · (x − t mu).
    The flow maps x0 to x1 = mu + s·x0 exactly."""

    def __init__(self, mu, s):
        self.mu = torch.as_tensor(mu, dtype=torch.float64)
        self.s = torch.as_tensor(s, dtype=torch.float64)

    def field(self, x, t):
        t = t.reshape(-1, *([1] * (x.dim() - 1))).to(x.dtype)
        var = t ** 2 * self.s ** 2 + (1 - t) ** 2
        return self.mu + (t * self.s ** 2 - (1 - t)) / var * (x - t * self.mu)

    def exact(self, x0):
        return self.mu + self.s * x0

    def log_prob(self, x):
        z = (x - self.mu) / self.s
        return (-0.5 * z ** 2 - torch.log(self.s) - 0.5 * math.log(2 * math.pi)).sum(-1)
