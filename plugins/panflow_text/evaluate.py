"""The text score card for a masked-diffusion run (``panflow eval``): validation NELBO in bits
per token and per byte beside a Kneser–Ney bigram fitted to the same training tokens (the
baseline row), sample statistics against held-out text, and infilling accuracy.

Judge perplexity needs the autoregressive baseline, which the benchmark trains beside the
diffusion model (``panflow bench --domains text``)."""

from __future__ import annotations

import math
import time

import torch

from panflow import Row, Run, ScoreCard

from .metrics import diffusion_infill_accuracy, judge_perplexity, ngram_jsd, unigram_entropy
from .ngram import KneserNey

LN2 = math.log(2)


def sample_stats(x: torch.Tensor, reference: torch.Tensor) -> dict[str, float]:
    return {"unigram_entropy": unigram_entropy(x), "jsd_2gram": ngram_jsd(x, reference, 2),
            "jsd_3gram": ngram_jsd(x, reference, 3)}


def ngram_row(role: str, order: int, bundle, scored, ref: torch.Tensor, n: int, seed: int, length: int,
              judge, vocab: int) -> tuple[Row, torch.Tensor]:
    """A Kneser–Ney n-gram fitted to the training tokens: its NLL on ``scored`` (validation
    ``Samples``) and ``n`` samples' statistics against ``ref`` (judged by ``judge`` when given)."""
    v = vocab
    bpb = 1 / (LN2 * bundle.meta["bytes_per_token"])
    t0 = time.perf_counter()
    lm = KneserNey(order, v).fit(bundle.train.x, bundle.train.mask)
    nll = lm.nll(scored.x, scored.mask)
    x = lm.sample(n, length, torch.Generator().manual_seed(seed))
    m = {"bits_per_byte": nll * bpb, "nll_bits_per_token": nll / LN2, "nll_bits_per_byte": nll * bpb,
         **sample_stats(x, ref)}
    if judge is not None:
        m["judge_ppl"] = judge_perplexity(judge, x, v)
    name = {2: "bigram", 3: "trigram"}.get(order, f"{order}-gram")
    return Row(role, m, {"n": n, "seed": seed, "wall_s": time.perf_counter() - t0, "solver": "ancestral",
                         "what": f"interpolated Kneser-Ney {name} (d = {lm.d}) on the training tokens"}), x


def evaluate(run: Run, n: int = 128, seed: int = 0, bundle=None, span: int = 8) -> ScoreCard:
    bundle = bundle or run.load_data()
    val = bundle.val.x
    n = min(n, val.shape[0] // 2)
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(val.shape[0], generator=g)
    held, ref = val[perm[:n]], val[perm[n:2 * n]]
    bpt_factor = 1 / LN2
    bpb = bpt_factor / bundle.meta["bytes_per_token"]
    card = ScoreCard("text")
    card.rows.append(Row("floor", sample_stats(held, ref), {"n": n, "seed": seed,
                                                          "what": "held-out text vs other held-out text"}))
    scored = bundle.val.index(perm[: 4 * n])
    card.rows.append(ngram_row("baseline", 2, bundle, scored, ref, n, seed, run.spec.shape[0], None,
                               run.spec.vocab_size)[0])
    nelbo = run.objective.nelbo(run.model, scored.to(run.device), seed=seed)
    t0 = time.perf_counter()
    gen, setup = run.generate(n, seed=seed)
    m = {"bits_per_byte": nelbo * bpb, "nelbo_bits_per_token": nelbo * bpt_factor, "nelbo_bits_per_byte": nelbo * bpb,
         **sample_stats(gen.x, ref),
         "infill_acc": diffusion_infill_accuracy(run.model, run.objective, held[: min(n, 64)], span,
                                                 nfe=span, seed=seed)}
    setup["wall_s"] = time.perf_counter() - t0
    card.rows.append(Row("model", m, setup))
    card.notes.append("NELBO is an upper bound on NLL (MDLM continuous-time bound, stratified t, 4 draws); "
                      "bits_per_byte is the NELBO for the model, the exact NLL for the n-gram baseline.")
    return card
