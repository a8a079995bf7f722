"""Sampler studies for the text benchmark: one table row per (model, sampler setting), each judged by
the AR baseline's perplexity beside unigram entropy and n-gram divergence from held-out text, and
the block-diffusion KV cache's sampling speed against re-reading the prefix."""

from __future__ import annotations

import time

import torch

from panflow import SampleOptions

from .evaluate import sample_stats
from .metrics import judge_perplexity

# (label, sampler, steps as a multiple of the sequence length, options): the settings every study runs
SETTINGS = (
    ("ancestral", "ancestral", 1.0, {}),
    ("ancestral top-p 0.9", "ancestral", 1.0, {"top_p": 0.9}),
    ("ancestral top-p 0.8", "ancestral", 1.0, {"top_p": 0.8}),
    ("confidence", "confidence", 1.0, {}),
    ("confidence noise 1", "confidence", 1.0, {"order_noise": 1.0}),
    ("confidence noise 3", "confidence", 1.0, {"order_noise": 3.0}),
    ("entropy order", "entropy", 1.0, {}),
    ("entropy order noise 1", "entropy", 1.0, {"order_noise": 1.0}),
    ("maskgit (drawn-token confidence)", "maskgit", 1.0, {}),
    ("maskgit noise 10", "maskgit", 1.0, {"order_noise": 10.0}),
    ("remdm eta 0.02 top-p 0.9, 2L steps", "remdm", 2.0, {"remask": 0.02, "top_p": 0.9}),
)


def label_of(entry) -> str:
    """``0`` -> MDLM (B = L), ``4`` -> block 4, ``"4:count"`` -> block 4 (count estimator)."""
    b, _, est = str(entry).partition(":")
    name = "MDLM (B = L)" if int(b) == 0 else f"block {b}"
    return name + (f" ({est} estimator)" if est and est != "time" else "")


PREVIEW_N = 6  # sequences per setting kept for report.html


def study(run, block_size: int, judge, ref: torch.Tensor, n: int, seed: int, settings=SETTINGS,
          step_sweep: tuple[int, ...] = (), kept: list | None = None) -> list[dict]:
    """Sample ``n`` sequences from ``run`` under each setting (and ancestral at each step budget in
    ``step_sweep``); return one dict per row with the judge perplexity and sample statistics.
    ``kept``, when given, receives each row's first ``PREVIEW_N`` sequences in row order."""
    length, v = run.spec.shape[0], run.spec.vocab_size
    rows = []
    todo = [(lab, solver, max(1, round(mult * length)), kw) for lab, solver, mult, kw in settings]
    todo += [(f"ancestral, {k} steps", "ancestral", k, {}) for k in step_sweep]
    for lab, solver, steps, kw in todo:
        gen, setup = run.generate(n, SampleOptions(solver, nfe=steps, **kw), seed=seed)
        rows.append({"model": label_of(block_size), "block_size": block_size, "setting": lab, "solver": solver,
                     "nfe_budget": steps, "nfe": setup["nfe"], "wall_s": setup["wall_s"], **kw,
                     "judge_ppl": judge_perplexity(judge, gen.x, v), **sample_stats(gen.x, ref)})
        if kept is not None:  # the first sequences of each row, for report.html previews
            kept.append(gen.x[:PREVIEW_N])
    return rows


@torch.no_grad()
def kv_cache_speed(run, n: int, seed: int, repeats: int = 2) -> dict:
    """Tokens per second of block-diffusion sampling (ancestral, one step per token) with the KV cache
    and re-reading the finished blocks at every call; best of ``repeats`` timings, same samples."""
    obj, length = run.objective, run.spec.shape[0]
    opts = SampleOptions("ancestral", nfe=length)
    out = {}
    samples = {}
    for cache in (True, False):
        best = float("inf")
        for _ in range(repeats):
            g = torch.Generator().manual_seed(seed)
            t0 = time.perf_counter()
            res = obj.generate(run.model, (n, length), opts, generator=g, kv_cache=cache)
            best = min(best, time.perf_counter() - t0)
        samples[cache] = res.x
        out["cache" if cache else "no_cache"] = {"seconds": best, "tokens_per_s": n * length / best, "nfe": res.nfe}
    out["speedup"] = out["no_cache"]["seconds"] / out["cache"]["seconds"]
    out["same_tokens"] = float((samples[True] == samples[False]).double().mean())
    out.update({"n": n, "seq_len": length, "block_size": obj.block_size})
    return out


@torch.no_grad()
def ar_speed(judge, vocab_size: int, n: int, length: int, seed: int) -> dict:
    """The AR baseline's sampling speed (it recomputes the whole prefix per token: no cache)."""
    from panflow import AutoregressiveObjective

    t0 = time.perf_counter()
    AutoregressiveObjective(vocab_size).generate(judge, (n, length), generator=torch.Generator().manual_seed(seed))
    s = time.perf_counter() - t0
    return {"seconds": s, "tokens_per_s": n * length / s}


def markdown(rows: list[dict], held_ppl: float, held_h: float) -> str:
    lines = ["### Samples: every model and sampler setting", "",
             f"Held-out text: judge ppl {held_ppl:.3f}, unigram entropy {held_h:.3f} bits. NFE = model calls made.", "",
             "| model | setting | steps | NFE | judge ppl | ratio | unigram H | H ratio | JSD 2-gram | JSD 3-gram | s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['setting']} | {r['nfe_budget']} | {r['nfe']} | {r['judge_ppl']:.3f} | "
                     f"{r['judge_ppl'] / held_ppl:.3f} | {r['unigram_entropy']:.3f} | {r['unigram_entropy'] / held_h:.3f} | "
                     f"{r['jsd_2gram']:.4f} | {r['jsd_3gram']:.4f} | {r['wall_s']:.2f} |")
    return "\n".join(lines)
