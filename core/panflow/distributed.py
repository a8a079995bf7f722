"""torch.distributed helpers: torchrun environment, DDP or FSDP2 wrapping, rank-0 gating, and
bounded collectives (every wait ends, at the latest after ``timeout_s``, in a clear error)."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from .errors import DistributedError


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    timeout_s: float = 600.0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _die_with_parent() -> None:
    """Under torchrun, ask Linux to SIGTERM this worker when its agent dies (a SIGKILLed agent
    would otherwise leave orphans); the SIGTERM then takes the normal collective stop path."""
    if not sys.platform.startswith("linux") or "TORCHELASTIC_RUN_ID" not in os.environ:
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - non-glibc platforms
        pass


def init_from_env(device: torch.device, timeout_s: float = 600.0) -> DistInfo:
    """Join the process group torchrun describes (``WORLD_SIZE`` > 1); nccl on CUDA, else gloo.
    Joining and every later collective wait at most ``timeout_s`` seconds."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(timeout_s=timeout_s)
    if timeout_s <= 0:
        raise DistributedError(f"train.dist_timeout_s must be > 0, got {timeout_s}")
    _die_with_parent()
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        try:
            dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s))
        except (RuntimeError, ValueError) as exc:
            raise DistributedError(f"rank {os.environ.get('RANK', '?')}: could not join the process group of "
                                   f"{world} ranks within {timeout_s:g} s (train.dist_timeout_s): "
                                   f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), timeout_s)


def _failed(what: str, info: DistInfo, exc: BaseException) -> DistributedError:
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return DistributedError(f"rank {info.rank}/{info.world_size}: {what} failed (a peer rank died, stopped "
                            f"or did not arrive within train.dist_timeout_s = {info.timeout_s:g} s): {first}")


def wrap_model(model: torch.nn.Module, info: DistInfo, device: torch.device, strategy: str):
    """DDP (default) or FSDP2 ``fully_shard`` for large backbones; returns the module to train."""
    if not info.enabled:
        return model
    if strategy == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for child in model.children():
            if sum(p.numel() for p in child.parameters()) > 0:
                fully_shard(child)
        fully_shard(model)
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [device.index] if device.type == "cuda" else None
    return DDP(model, device_ids=ids)


def full_state_dict(model: torch.nn.Module, strategy: str, info: DistInfo) -> dict[str, torch.Tensor]:
    """The unsharded state dict (gathered on every rank for FSDP; plain otherwise)."""
    if info.enabled and strategy == "fsdp":
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        try:
            return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        except RuntimeError as exc:
            raise _failed("gathering the model state", info, exc) from exc
    inner = model.module if hasattr(model, "module") else model
    return inner.state_dict()


def full_optimizer_state_dict(model: torch.nn.Module, optimizer: torch.optim.Optimizer, strategy: str,
                              info: DistInfo) -> dict:
    """The optimizer state keyed by parameter name, unsharded (FSDP) or as is (single/DDP)."""
    if info.enabled and strategy == "fsdp":
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        try:
            return get_optimizer_state_dict(model, optimizer,
                                            options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        except RuntimeError as exc:
            raise _failed("gathering the optimizer state", info, exc) from exc
    return optimizer.state_dict()


def load_full_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer, model_sd: dict,
                    optim_sd: dict | None, strategy: str, info: DistInfo) -> None:
    """Load unsharded model (and optimizer) state into a plain, DDP or FSDP-sharded model."""
    if info.enabled and strategy == "fsdp":
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict, set_optimizer_state_dict

        opts = StateDictOptions(full_state_dict=True)
        set_model_state_dict(model, model_sd, options=opts)
        if optim_sd:
            set_optimizer_state_dict(model, optimizer, optim_sd, options=opts)
        return
    inner = model.module if hasattr(model, "module") else model
    inner.load_state_dict(model_sd)
    if optim_sd:
        optimizer.load_state_dict(optim_sd)


def all_reduce_mean(x: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.enabled:
        x = x.clone()
        try:
            dist.all_reduce(x, op=dist.ReduceOp.SUM)
        except RuntimeError as exc:
            raise _failed("all-reduce of the loss", info, exc) from exc
        x /= info.world_size
    return x


def any_rank(flag: bool, info: DistInfo) -> bool:
    """True on every rank when ``flag`` is true on at least one (a one-integer all-reduce): the
    collective stop decision, so all ranks checkpoint at the same step and exit together."""
    if not info.enabled:
        return flag
    t = torch.tensor([1 if flag else 0], dtype=torch.int32)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    try:
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
    except RuntimeError as exc:
        raise _failed("the stop-flag all-reduce", info, exc) from exc
    return bool(t.item())


def barrier(info: DistInfo, what: str = "barrier") -> None:
    if info.enabled:
        try:
            dist.barrier()
        except RuntimeError as exc:
            raise _failed(what, info, exc) from exc


def shutdown(info: DistInfo) -> None:
    """Leave the process group (after the last collective of a run that is ending)."""
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
