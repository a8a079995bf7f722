"""torch.distributed helpers: torchrun environment, DDP or FSDP2 wrapping, rank-0 gating."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_from_env(device: torch.device) -> DistInfo:
    """Join the process group torchrun describes (``WORLD_SIZE`` > 1); nccl on CUDA, else gloo."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


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

        return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    inner = model.module if hasattr(model, "module") else model
    return inner.state_dict()


def full_optimizer_state_dict(model: torch.nn.Module, optimizer: torch.optim.Optimizer, strategy: str,
                              info: DistInfo) -> dict:
    """The optimizer state keyed by parameter name, unsharded (FSDP) or as is (single/DDP)."""
    if info.enabled and strategy == "fsdp":
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        return get_optimizer_state_dict(model, optimizer,
                                        options=StateDictOptions(full_state_dict=True, cpu_offload=True))
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
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
        x /= info.world_size
    return x


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()
