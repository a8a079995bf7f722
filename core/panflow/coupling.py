"""Couplings between noise and data for flow-matching training (``flow.coupling``).

Plain flow matching pairs each data point with independent noise. A minibatch optimal-transport
coupling (Pooladian et al. 2023, "Multisample Flow Matching"; Tong et al. 2024, "Improving and
generalizing flow-based generative models with minibatch optimal transport") permutes the noise
of a batch so that the pairs minimise the total squared distance: paths cross less, so the
learnt field is straighter and few Euler steps go further.

The assignment is pure torch (the core imports no scipy): a forward auction with ε-scaling
(Bertsekas 1988), whose result is optimal to within ``n · ε`` in total cost. Conditions are
respected: noise is permuted only among rows that show the model the same condition (the same
class label, or the null where the label was dropped), so the noise paired with each condition
is still an unbiased draw of N(0, I), as the sampler assumes. Continuous conditions (tensor
contexts, known parts with their values) admit no such groups and are refused (``ConfigError``).
"""

from __future__ import annotations

import dataclasses
import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .components import Samples
from .errors import ConfigError, DataError, UnknownNameError
from .nametable import NameTable


# -- the assignment ---------------------------------------------------------------------------------
def auction_assignment(cost: torch.Tensor, tol: float = 1e-3, shrink: float = 5.0) -> torch.Tensor:
    """Minimum-cost perfect matching of a square ``cost [n, n]``: ``col [n]``, row ``i`` → column ``col[i]``.

    Forward auction with ε-scaling, every unassigned row bidding at once (Jacobi). The total cost
    is within ``n · ε_final`` of the optimum, with ``ε_final = tol · mean(cost)``.
    """
    n = cost.shape[0]
    if cost.dim() != 2 or cost.shape[1] != n:
        raise DataError(f"an assignment needs a square cost matrix, got {tuple(cost.shape)}")
    if n <= 1:
        return torch.zeros(n, dtype=torch.long, device=cost.device)
    benefit = -cost.double()
    span = float(benefit.max() - benefit.min())
    eps_final = max(tol * float(cost.double().mean()), 1e-12)
    eps = max(span / 4.0, eps_final)
    prices = torch.zeros(n, dtype=torch.float64, device=cost.device)
    rows = torch.arange(n, device=cost.device)
    while True:
        owner = torch.full((n,), -1, dtype=torch.long, device=cost.device)      # column -> row
        col = torch.full((n,), -1, dtype=torch.long, device=cost.device)        # row -> column
        while True:
            free = rows[col < 0]
            if free.numel() == 0:
                break
            top = (benefit[free] - prices).topk(2, dim=1)
            j = top.indices[:, 0]
            bid = prices[j] + (top.values[:, 0] - top.values[:, 1]) + eps
            best = torch.full((n,), -torch.inf, dtype=torch.float64, device=cost.device).scatter_reduce(
                0, j, bid, "amax")
            won = bid >= best[j]
            winner = torch.full((n,), n, dtype=torch.long, device=cost.device).scatter_reduce(
                0, j[won], free[won], "amin")
            objs = (winner < n).nonzero().squeeze(1)
            prev = owner[objs]
            col[prev[prev >= 0]] = -1
            owner[objs] = winner[objs]
            col[winner[objs]] = objs
            prices[objs] = best[objs]
        if eps <= eps_final:
            return col
        eps = max(eps / shrink, eps_final)


def sq_cost(x0: torch.Tensor, x1: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """``C[i, j] = Σ_k w_jk (x0_ik − x1_jk)²`` for flat ``x0 [n, D]``, ``x1 [n, D]``, ``weight [n, D]`` (of the data)."""
    x0, x1 = x0.double(), x1.double()
    if weight is None:
        return torch.cdist(x0, x1).pow(2)
    w = weight.double()
    return (x0 ** 2) @ w.T - 2 * x0 @ (w * x1).T + (w * x1 ** 2).sum(1)[None]


def sinkhorn_plan(cost: torch.Tensor, eps: float = 0.02, iters: int = 30) -> torch.Tensor:
    """Entropic OT plan ``[n, m]`` between uniform marginals (Cuturi 2013), ``ε`` relative to the mean cost.

    Scaling iterations in float64 on the cost less each row's minimum (absorbed by the row scaling),
    ``exp`` clamped at ``e^-700`` so no row or column vanishes.
    """
    c = cost.double()
    k = torch.exp(-((c - c.min(1, keepdim=True).values) / (float(c.mean()) * eps + 1e-300)).clamp(max=700.0))
    v = torch.ones(c.shape[1], dtype=torch.float64, device=c.device)
    for _ in range(iters):
        u = 1.0 / (k @ v)
        v = 1.0 / (k.T @ u)
    return u[:, None] * k * v[None, :]


def greedy_rounding(plan: torch.Tensor) -> torch.Tensor:
    """A permutation ``col [n]`` from a square plan: every unassigned row proposes its best free column,
    each column keeps its strongest proposal; repeated until all rows are assigned (parallel greedy)."""
    n = plan.shape[0]
    p = plan.clone()
    col = torch.full((n,), -1, dtype=torch.long, device=plan.device)
    rows = torch.arange(n, device=plan.device)
    while True:
        free = rows[col < 0]
        if free.numel() == 0:
            return col
        val, j = p[free].max(1)
        best = torch.full((n,), -torch.inf, dtype=p.dtype, device=p.device).scatter_reduce(0, j, val, "amax")
        won = val >= best[j]
        winner = torch.full((n,), n, dtype=torch.long, device=p.device).scatter_reduce(0, j[won], free[won], "amin")
        objs = (winner < n).nonzero().squeeze(1)
        col[winner[objs]] = objs
        p[:, objs] = -torch.inf


def ot_pairing(x0: torch.Tensor, x1: torch.Tensor, weight: torch.Tensor | None = None, eps: float = 0.02,
               iters: int = 30) -> torch.Tensor:
    """``perm [n]``: noise ``x0[perm[j]]`` goes with data ``x1[j]`` (Sinkhorn plan rounded greedily; fast,
    typically 5-20 per cent above the optimal total cost; ``ot-exact`` is the optimum)."""
    return greedy_rounding(sinkhorn_plan(sq_cost(x0, x1, weight).T, eps, iters))  # rows = data, columns = noise


def exact_ot_pairing(x0: torch.Tensor, x1: torch.Tensor, weight: torch.Tensor | None = None,
                     tol: float = 1e-3) -> torch.Tensor:
    """``perm [n]`` of (ε-)optimal total squared distance (auction; slow beyond a few hundred points on CPU)."""
    return auction_assignment(sq_cost(x0, x1, weight).T, tol)


# -- the registry -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Coupling:
    """A way of pairing noise with data: ``pair(x0 [n, D], x1 [n, D], weight [n, D] | None, **options) -> perm [n]``
    (noise ``x0[perm[j]]`` goes with data ``x1[j]``); ``pair=None`` keeps the independent pairing."""

    name: str
    pair: Callable[..., torch.Tensor] | None
    description: str = ""
    noise_key: str = ""  # set: no pairing; each sample brings its noise as ``cond[noise_key]`` (reflow pairs)


COUPLINGS = NameTable("coupling", {
    "independent": Coupling("independent", None, "each data point with independent noise (plain flow matching)"),
    "ot": Coupling("ot", ot_pairing, "minibatch OT within each condition group: Sinkhorn plan, greedy rounding"),
    "ot-exact": Coupling("ot-exact", exact_ot_pairing, "minibatch OT within each condition group: auction, "
                         "total cost within tol x mean cost per pair of the optimum"),
    "reflow": Coupling("reflow", None, "each sample with the noise it was generated from (panflow reflow pairs, "
                       "data.cache)", noise_key="reflow_noise"),
})


def register_coupling(coupling: Coupling) -> Coupling:
    """Add a coupling under ``coupling.name`` (chosen by ``flow.coupling``); a clash is an error."""
    return COUPLINGS.add(coupling.name, coupling)


def get_coupling(name: str) -> Coupling:
    try:
        return COUPLINGS.lookup(name, "value of 'flow.coupling'")
    except UnknownNameError as exc:  # a config value: reported as a config error
        raise ConfigError(str(exc)) from exc


# -- coupled training ---------------------------------------------------------------------------------
def group_ids(cond: dict[str, torch.Tensor], names: list[str], n: int, device) -> torch.Tensor:
    """``[n]`` ids of rows that show the model identical label conditions (nulls included)."""
    if not names:
        return torch.zeros(n, dtype=torch.long, device=device)
    keys = torch.stack([cond[k].reshape(n).long() for k in names], 1)
    return torch.unique(keys, dim=0, return_inverse=True)[1]


class CoupledObjective:
    """A flow objective whose training noise is re-paired with the data by a :class:`Coupling`.

    Everything but :meth:`loss` is the wrapped objective's (sampling, contract, ...). The pairing
    runs per (micro-)batch inside ``loss``, after the randomness was drawn, so resume stays exact;
    with accumulation or several ranks each share is coupled on its own. Seconds spent pairing are
    reported through :meth:`train_stats` (``coupling_s`` per step in ``metrics.jsonl``).
    """

    def __init__(self, inner: Any, coupling: Coupling, options: dict | None = None):
        self.inner, self.coupling, self.options = inner, coupling, dict(options or {})
        bad = [c.name for c in inner.conditions if c.kind != "label"]
        if coupling.noise_key:
            bad = []  # given pairs were made per condition: nothing to group
        if bad:
            raise ConfigError(f"flow.coupling = '{coupling.name}' pairs noise with data only within groups of identical "
                              f"conditions; tensor condition(s) {bad} are continuous and form no groups (not supported; "
                              "use flow.coupling = 'independent')")
        if getattr(getattr(inner, "known", None), "name", "none") != "none" and not coupling.noise_key:
            raise ConfigError(f"flow.coupling = '{coupling.name}' cannot pair within known parts: their values are a "
                              "continuous context (set flow.known = 'none' or flow.coupling = 'independent')")
        self._seconds, self._calls, self._groups = 0.0, 0, 0

    def __getattr__(self, name: str) -> Any:  # everything else is the wrapped objective's
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def couple(self, batch: Samples, rand: dict) -> torch.Tensor:
        """The batch's noise ``rand['x0']`` permuted within condition groups to pair with ``batch.x``."""
        if batch.known is not None:
            raise DataError(f"flow.coupling = '{self.coupling.name}' cannot pair within known parts (the batch carries "
                            "known elements); use flow.coupling = 'independent'")
        t0 = time.perf_counter()
        x0, x1 = rand["x0"], batch.x
        n = x1.shape[0]
        if self.coupling.noise_key:
            given = batch.cond.get(self.coupling.noise_key)
            if given is None or given.shape != x0.shape:
                raise DataError(f"flow.coupling = '{self.coupling.name}' needs each sample's noise as "
                                f"cond['{self.coupling.noise_key}'] shaped {list(x0.shape)} (got "
                                f"{None if given is None else list(given.shape)}); make the pairs with panflow reflow "
                                "and train with data.cache = that directory")
            self._seconds += time.perf_counter() - t0
            self._calls += 1
            return given.to(x0.dtype)
        seen = self.inner.train_cond(batch.cond, rand["drop"])
        names = [c.name for c in self.inner.conditions]
        gid = group_ids(seen, names, n, x1.device)
        weight = None
        if batch.mask is not None:
            m = batch.mask.to(x1.dtype)
            weight = m.reshape(*m.shape, *([1] * (x1.dim() - m.dim()))).expand_as(x1).reshape(n, -1)
        flat0, flat1 = x0.reshape(n, -1), x1.reshape(n, -1)
        out = x0.clone()
        groups = int(gid.max()) + 1 if n else 0
        with torch.no_grad():
            for g in range(groups):
                idx = (gid == g).nonzero().squeeze(1)
                w = None if weight is None else weight[idx]
                perm = self.coupling.pair(flat0[idx], flat1[idx], w, **self.options)
                out[idx] = x0[idx[perm]]
        self._seconds += time.perf_counter() - t0
        self._calls += 1
        self._groups += groups
        return out

    def loss(self, model, batch: Samples, rand: dict | None = None, generator: torch.Generator | None = None):
        rand = rand if rand is not None else self.inner.draw(batch.x.shape[0], batch.x, generator)
        return self.inner.loss(model, batch, {**rand, "x0": self.couple(batch, rand)})

    def train_stats(self, steps: int) -> dict[str, float]:
        """Seconds of pairing per optimizer step and groups per batch since the last call (then reset)."""
        out = {"coupling_s": self._seconds / max(steps, 1)}
        if not self.coupling.noise_key:
            out["coupling_groups"] = self._groups / max(self._calls, 1)
        self._seconds, self._calls, self._groups = 0.0, 0, 0
        return out

    def to_json(self) -> dict[str, Any]:
        return {**self.inner.to_json(), "coupling": {"name": self.coupling.name, **self.options}}


def couple_objective(objective: Any, name: str, options: dict | None = None) -> Any:
    """``objective`` trained with the coupling ``name`` (``independent``: returned unchanged)."""
    from .objective import FlowObjective

    coupling = get_coupling(name)
    options = dict(options or {})
    if coupling.pair is None and not coupling.noise_key:
        if options:
            raise ConfigError(f"flow.coupling_options {sorted(options)} given, but coupling '{name}' takes no options")
        return objective
    known = list(inspect.signature(coupling.pair).parameters)[3:] if coupling.pair is not None else []
    for key in options:
        if key not in known:
            raise ConfigError(str(UnknownNameError(f"config key (for coupling '{name}')", f"flow.coupling_options.{key}",
                                                   [f"flow.coupling_options.{k}" for k in known])))
    if not isinstance(objective, FlowObjective):
        raise ConfigError(f"flow.coupling = '{name}' pairs Gaussian noise with data; objective "
                          f"'{getattr(objective, 'kind', type(objective).__name__)}' draws no such noise")
    return CoupledObjective(objective, dataclasses.replace(coupling), options)
