"""The training run: device and AMP, EMA, clipping, LR schedule, accumulation, compile,
DDP/FSDP via torchrun, atomic checkpoints with their contract, bit-exact resume, progress, logs.

Every step ``s`` draws its batch indices and noise from a generator seeded by ``(seed, s)``,
so a run is a pure function of its config: resuming at step ``s`` reproduces the uninterrupted
run exactly on CPU, and ranks/accumulation slices see the noise of the unsplit global batch.
"""

from __future__ import annotations

import json
import math
import signal
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch

from . import distributed as D
from ._version import __version__
from .checkpoint import find_checkpoint, load_state, load_weights, save_checkpoint
from .components import Samples
from .config import RunConfig, TrainConfig, validate
from .ema import EMA
from .errors import ConfigError, ContractError, NonFiniteError, PanflowError
from .loader import LoaderOptions, make_feeder
from .streaming import is_lazy


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device '{name}' requested but CUDA is not available")
    return dev


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up then constant or cosine decay to ``min_lr_ratio · lr``."""
    if cfg.warmup_steps > 0 and step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.lr_schedule == "constant":
        return cfg.lr
    if cfg.lr_schedule == "cosine":
        span = max(1, cfg.steps - cfg.warmup_steps)
        frac = min(1.0, (step - cfg.warmup_steps) / span)
        return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * frac)))
    raise ConfigError(f"unknown lr_schedule '{cfg.lr_schedule}' (constant | cosine)")


def make_optimizer(params, cfg: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    kw: dict[str, Any] = {"lr": cfg.lr, "betas": (cfg.beta1, cfg.beta2), "weight_decay": cfg.weight_decay}
    if device.type == "cuda":
        kw["fused"] = True
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, **kw)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, **kw)
    raise ConfigError(f"unknown optimizer '{cfg.optimizer}' (adam | adamw)")


def _truncate_log(path: Path, step: int) -> None:
    """Keep only the records up to ``step`` (the resumed checkpoint; 0 = a fresh run), so a resumed
    run never logs a step twice and a fresh run never appends to an old log."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if int(json.loads(line)["step"]) <= step:
                keep.append(line)
        except (ValueError, KeyError, TypeError):  # a line cut by a crash mid-write
            continue
    path.write_text("".join(k + "\n" for k in keep))


class Interrupted(PanflowError):
    """Raised inside the loop when SIGINT/SIGTERM arrived; a checkpoint has been written."""


class Trainer:
    """Trains ``model`` with ``objective`` on ``data``: in-memory (model space) or lazy.

    Lazy data (:class:`~panflow.LazySamples`, :class:`~panflow.ShardedSamples`) streams through a
    DataLoader (``loader`` options) and is encoded on the device by ``encode`` batch by batch.

    ``contract`` (JSON) and ``extra_weights`` (e.g. the encoder's tensors) are written into
    every checkpoint under ``run_dir``. Call :meth:`fit`; it returns the list of logged records.
    """

    def __init__(self, model: torch.nn.Module, objective, data: Samples, cfg: TrainConfig,
                 run_dir: str | Path | None = None, contract: dict[str, Any] | None = None,
                 extra_weights: dict[str, dict[str, torch.Tensor]] | None = None,
                 on_log: Callable[[dict], None] | None = None,
                 encode: Callable[[torch.Tensor], torch.Tensor] | None = None, loader: LoaderOptions | None = None):
        validate(RunConfig(train=cfg))  # every train.* value in range, known names only
        self.cfg, self.objective = cfg, objective
        self.device = resolve_device(cfg.device)
        self.dist = D.init_from_env(self.device, cfg.dist_timeout_s)
        if self.device.type == "cuda" and self.dist.enabled:
            self.device = torch.device("cuda", self.dist.local_rank)
            torch.cuda.set_device(self.device)
        per_rank, rem = divmod(cfg.batch_size, self.dist.world_size * cfg.accumulation)
        if rem:
            raise ConfigError(f"train.batch_size {cfg.batch_size} is not divisible by world size "
                              f"{self.dist.world_size} × accumulation {cfg.accumulation}")
        self.micro = per_rank
        if self.device.type == "cuda" and cfg.tf32:
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        torch.manual_seed(cfg.seed)
        self.model = model.to(self.device)
        self.feeder = None  # the streamed path for lazy data (panflow.loader); in-memory data is indexed
        if is_lazy(data):
            self.data = data
            self.feeder = make_feeder(data, cfg.batch_size, self.dist.rank, self.dist.world_size, cfg.seed,
                                      self.device, encode, loader)
        else:
            self.data = data.to(self.device)
        self.ema = EMA(self.model, cfg.ema_decay, cfg.ema_warmup) if cfg.ema_decay > 0 else None
        self.train_model = D.wrap_model(self.model, self.dist, self.device, cfg.strategy)
        self.forward = torch.compile(self.train_model) if cfg.compile else self.train_model
        self.optimizer = make_optimizer(self.train_model.parameters(), cfg, self.device)
        use_bf16 = cfg.amp == "bf16" or (cfg.amp == "auto" and self.device.type == "cuda")
        if cfg.amp not in ("auto", "bf16", "off"):
            raise ConfigError(f"unknown amp '{cfg.amp}' (auto | bf16 | off)")
        self.autocast = (lambda: torch.autocast(self.device.type, dtype=torch.bfloat16)) if use_bf16 else nullcontext
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.contract = contract or {}
        self.extra_weights = extra_weights or {}
        self.on_log = on_log
        self.step = 0
        self.bad_steps = 0
        self.records: list[dict] = []
        self._stop_signal: int | None = None
        self._saved_step: int | None = None  # step of the newest checkpoint written or resumed from

    # -- state -------------------------------------------------------------------------
    def checkpoint(self) -> Path | None:
        """Write a checkpoint (rank 0 only; all ranks join the FSDP gather)."""
        model_sd = D.full_state_dict(self.train_model, self.cfg.strategy, self.dist)
        optim_sd = D.full_optimizer_state_dict(self.train_model, self.optimizer, self.cfg.strategy, self.dist)
        if self.run_dir is None or not self.dist.is_main:
            D.barrier(self.dist, "the checkpoint barrier")
            return None
        weights = {"model": model_sd, **self.extra_weights}
        if self.ema is not None:
            weights["ema"] = self.ema.state_dict()
        state = {"step": self.step, "bad_steps": self.bad_steps,
                 "optimizer": optim_sd, "torch_rng": torch.get_rng_state()}
        contract = {**self.contract, "panflow_version": __version__, "train": vars(self.cfg)}
        path = save_checkpoint(self.run_dir, self.step, contract, weights, state, self.cfg.keep_checkpoints)
        self._saved_step = self.step
        D.barrier(self.dist, "the checkpoint barrier")
        return path

    def resume(self, path: str | Path | None = None) -> int:
        """Load the newest checkpoint of ``run_dir`` (or ``path``); returns the step reached."""
        ckpt = find_checkpoint(path or self.run_dir)
        state = load_state(ckpt)
        try:
            D.load_full_state(self.train_model, self.optimizer, load_weights(ckpt, "model"), state.get("optimizer"),
                              self.cfg.strategy, self.dist)
            if self.ema is not None:
                self.ema.load_state_dict(load_weights(ckpt, "ema"))
        except (RuntimeError, ValueError, KeyError) as exc:
            raise ContractError(f"checkpoint {ckpt} does not fit this model/optimizer (another width, "
                                f"backbone or domain?): {str(exc).strip().splitlines()[0]}") from exc
        self.step, self.bad_steps = int(state["step"]), int(state.get("bad_steps", 0))
        self._saved_step = self.step
        torch.set_rng_state(state["torch_rng"])
        return self.step

    # -- the loop ----------------------------------------------------------------------
    def _batch(self, step: int):
        """Indices and noise of the global batch at ``step``; this rank's micro-batches."""
        g = torch.Generator(device=self.device).manual_seed(self.cfg.seed * 1_000_003 + step)
        if self.feeder is not None:
            yield from self._streamed_batch(step, g)
            return
        n = len(self.data)
        idx = torch.randint(0, n, (self.cfg.batch_size,), generator=g, device=self.device)
        glob = self.data.index(idx)
        rand = self.objective.draw(self.cfg.batch_size, glob.x, g)
        if self.cfg.accumulation == 1 and not self.dist.enabled:  # the whole batch: no slicing
            yield glob, rand
            return
        start = self.dist.rank * self.micro * self.cfg.accumulation
        for a in range(self.cfg.accumulation):
            sl = slice(start + a * self.micro, start + (a + 1) * self.micro)
            yield glob.index(sl), {k: v[sl] for k, v in rand.items()}

    def _streamed_batch(self, step: int, g: torch.Generator):
        """This rank's share of step ``step`` from the feeder; noise drawn for the global batch."""
        local = self.feeder.batch(step)
        rand = self.objective.draw(self.cfg.batch_size, local.x, g)
        start = self.dist.rank * self.micro * self.cfg.accumulation
        for a in range(self.cfg.accumulation):
            sl = slice(a * self.micro, (a + 1) * self.micro)
            rs = slice(start + sl.start, start + sl.stop)
            yield local.index(sl), {k: v[rs] for k, v in rand.items()}

    def train_step(self, step: int) -> tuple[float, float | None]:
        """One optimizer step (with accumulation); returns (global mean loss, grad norm or None
        when clipping is off: the norm is only computed when it is needed)."""
        lr = lr_at(step, self.cfg)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        total = None
        for batch, rand in self._batch(step):
            with self.autocast():
                loss = self.objective.loss(self.forward, batch, rand)
                if self.cfg.accumulation > 1:
                    loss = loss / self.cfg.accumulation
            loss.backward()
            total = loss.detach() if total is None else total + loss.detach()
        total = D.all_reduce_mean(total, self.dist)
        value = float(total)
        if not math.isfinite(value):
            return value, None
        gn = None
        if self.cfg.grad_clip > 0:
            gn = float(torch.nn.utils.clip_grad_norm_(self.train_model.parameters(), self.cfg.grad_clip))
        self.optimizer.step()
        if self.ema is not None:
            self.ema.update(step + 1)
        return value, gn

    def _check_bad_steps(self, loss: float) -> None:
        """Stop on a non-finite loss beyond ``train.max_bad_steps``, or when they are most steps."""
        many = self.bad_steps > self.cfg.max_bad_steps
        most = self.bad_steps >= 10 and 2 * self.bad_steps > self.step + 1
        if not (many or most):
            return
        if self._saved_step is not None:
            where = f"the last checkpoint (step {self._saved_step}) is intact in {self.run_dir}"
        else:
            where = "no checkpoint was written before it" + (f" in {self.run_dir}" if self.run_dir else "")
        why = (f"{self.bad_steps} non-finite steps, more than half of those run" if most and not many
               else "set train.max_bad_steps to skip a bounded number of such steps")
        raise NonFiniteError(f"non-finite loss ({loss}) at step {self.step}; {where} ({why})")

    def _on_signal(self, signum, frame) -> None:  # pragma: no cover - exercised in a subprocess test
        self._stop_signal = signum  # torchrun's agent forwards the same signal again: never a hard exit

    def _should_stop(self, last: int) -> bool:
        """The stop decision, collective under torchrun: every ``train.stop_check_every`` steps the
        ranks all-reduce their local "a signal arrived" flags, so all stop at the same step."""
        if not self.dist.enabled:
            return self._stop_signal is not None
        if self.step % self.cfg.stop_check_every and self.step != last:
            return False
        return D.any_rank(self._stop_signal is not None, self.dist)

    def fit(self, until: int | None = None) -> list[dict]:
        """Train to ``cfg.steps`` (or stop early at step ``until``), checkpointing at the end."""
        cfg = self.cfg
        last = cfg.steps if until is None else min(until, cfg.steps)
        handlers = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                handlers[sig] = signal.signal(sig, self._on_signal)
            except ValueError:  # not the main thread
                pass
        writer = self._tensorboard()
        bar = self._progress()
        log_path = self.run_dir / "metrics.jsonl" if self.run_dir is not None and self.dist.is_main else None
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            _truncate_log(log_path, self.step)
        t_last, s_last = time.perf_counter(), self.step
        try:
            while self.step < last:
                loss, gn = self.train_step(self.step)
                if not math.isfinite(loss):
                    self.bad_steps += 1
                    self._check_bad_steps(loss)
                self.step += 1
                if bar is not None:
                    bar.update(1)
                if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                    now = time.perf_counter()
                    rec = {"step": self.step, "loss": loss, "lr": lr_at(self.step - 1, cfg),
                           "grad_norm": gn, "steps_per_s": (self.step - s_last) / max(now - t_last, 1e-9),
                           "bad_steps": self.bad_steps}
                    stats = getattr(self.objective, "train_stats", None)  # objective's own costs (e.g. coupling_s)
                    if stats is not None:
                        rec.update(stats(self.step - s_last))
                    t_last, s_last = now, self.step
                    self.records.append(rec)
                    if log_path is not None:
                        with open(log_path, "a") as f:
                            f.write(json.dumps(rec) + "\n")
                    if writer is not None:
                        writer.add_scalar("loss", loss, self.step)
                        writer.add_scalar("lr", rec["lr"], self.step)
                    if bar is not None:
                        bar.set_postfix(loss=f"{loss:.4f}", it_s=f"{rec['steps_per_s']:.1f}")
                    if self.on_log is not None:
                        self.on_log(rec)
                stop = self._should_stop(last)
                if stop or (cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0 and self.step < cfg.steps):
                    self.checkpoint()
                if stop:
                    D.shutdown(self.dist)
                    why = (f"signal {self._stop_signal}" if self._stop_signal is not None
                           else "a signal to another rank")
                    raise Interrupted(f"stopped by {why} at step {self.step}; "
                                      "checkpoint written, continue with --resume")
            self.checkpoint()
            if self.bad_steps and self.dist.is_main:
                print(f"panflow: warning: {self.bad_steps} of {self.step} steps had a non-finite loss and were "
                      "skipped (train.max_bad_steps)", file=sys.stderr)
        finally:
            if bar is not None:
                bar.close()
            if writer is not None:
                writer.close()
            for sig, h in handlers.items():
                signal.signal(sig, h)
        return self.records

    def _progress(self):
        if not self.cfg.progress or not self.dist.is_main or not sys.stderr.isatty():
            return None
        from tqdm.auto import tqdm

        return tqdm(total=self.cfg.steps, initial=self.step, desc="train", unit="step")

    def _tensorboard(self):
        if not self.cfg.tensorboard or self.run_dir is None or not self.dist.is_main:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise ConfigError('TensorBoard logging needs: pip install "panflow[tensorboard]"') from exc
        return SummaryWriter(str(self.run_dir / "tensorboard"))

    @property
    def sampling_model(self) -> torch.nn.Module:
        """The EMA weights when kept (the default for sampling), else the raw model."""
        return self.ema.model if self.ema is not None else self.model

