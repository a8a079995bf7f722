"""Is a change to the core bit-exact for existing domains? Train the smoke runs of toy2d, image and
text and print a digest of every weight (model + EMA) and the loss trajectory as JSON.

Run it once on each source tree with the same environment and compare the two outputs, e.g.:

    git worktree add /tmp/old <commit>
    OMP_NUM_THREADS=1 PYTHONPATH=/tmp/old/core:/tmp/old/plugins python benchmarks/bit_exact_smoke.py > old.json
    OMP_NUM_THREADS=1 python benchmarks/bit_exact_smoke.py > new.json

Identical digests mean the committed results of those domains are reproduced exactly by the new
code (same random streams, same arithmetic). Digests are machine-specific (kernel choice), so
compare runs on one machine only.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file

from panflow import build_config, train


def digest(domain: str) -> dict:
    cfg = build_config(domain, "smoke", overrides=["train.progress=false"])
    run = Path(tempfile.mkdtemp()) / "run"
    train(cfg, run)
    ckpt = sorted((run / "checkpoints").glob("step_*"))[-1]
    h = hashlib.sha256()
    for name in ("model", "ema"):
        sd = load_file(str(ckpt / f"{name}.safetensors"))
        for k in sorted(sd):
            h.update(k.encode())
            h.update(sd[k].float().numpy().tobytes())
    losses = [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    return {"digest": h.hexdigest()[:16], "losses": losses}


if __name__ == "__main__":
    torch.set_num_threads(1)
    print(json.dumps({d: digest(d) for d in ("toy2d", "image", "text")}, indent=1))
