"""The text benchmark: masked diffusion against the same transformer made causal and trained as an
autoregressive model by the same Trainer on the same tokens and budget.

Reports validation NELBO vs AR NLL (bits per token and per byte), samples judged by the AR
model's perplexity beside unigram entropy and n-gram divergence from held-out text, against the
number of unmasking steps, and infilling accuracy on held-out spans."""

from __future__ import annotations

import dataclasses
import math
import shutil
import tempfile
import time
from pathlib import Path

import torch

from panflow import (
    AutoregressiveObjective,
    Row,
    SampleOptions,
    ScoreCard,
    Trainer,
    autoregressive_nll,
    bar,
    build_config,
    count_parameters,
    load_run,
    train,
)

from .backbones import build_transformer
from .evaluate import sample_stats
from .metrics import autoregressive_fill_accuracy, diffusion_infill_accuracy, judge_perplexity

PRESETS = {
    "smoke": {"nfes": [2, 4], "n": 8, "span": 4, "nelbo_seqs": 32},
    "small": {"nfes": [8, 16, 32, 64, 128], "n": 128, "span": 8, "nelbo_seqs": 512},
    "full": {"nfes": [8, 16, 32, 64, 128], "n": 512, "span": 16, "nelbo_seqs": 4096},
}
LN2 = math.log(2)


CURVE_TIMES = (0.05, 0.25, 0.5, 0.75, 0.95)


def milestones(steps: int, n: int = 4) -> list[int]:
    """Training steps at which both models are evaluated (the last is the full budget)."""
    return sorted({max(1, steps * i // n) for i in range(1, n + 1)})


def train_autoregressive(cfg, bundle, spec, root: Path, seed: int, on_milestone) -> tuple[torch.nn.Module, float]:
    """Train the causal baseline, calling ``on_milestone(step, ema_model)`` at each milestone."""
    torch.manual_seed(seed)
    model = build_transformer(spec, causal=True, **cfg.model.options)
    trainer = Trainer(model, AutoregressiveObjective(spec.vocab_size), bundle.train,
                      dataclasses.replace(cfg.train, checkpoint_every=0), run_dir=root / "ar",
                      contract={"domain": "text", "objective": {"kind": "autoregressive"}})
    spent = 0.0
    for step in milestones(cfg.train.steps):
        t0 = time.perf_counter()
        trainer.fit(until=step)
        spent += time.perf_counter() - t0
        on_milestone(step, trainer.sampling_model.eval())
        trainer.model.train()
    return trainer.sampling_model.eval(), spent


@dataclasses.dataclass
class Pair:
    """Both models of one budget, the data they saw and their validation numbers."""

    mdlm: object          # panflow Run (EMA weights)
    judge: torch.nn.Module
    bundle: object
    perm: torch.Tensor     # seeded permutation of the validation set (first ``nelbo_seqs`` = ``val``)
    val: object            # validation Samples used for NELBO / NLL
    bpb: float             # bits per byte per nat per token
    curve: list[dict]      # NELBO, AR NLL and their ratio at each milestone (bits per byte)
    nelbo: float           # final NELBO and AR NLL, nats per token
    ar_nll: float
    mdlm_s: float
    ar_s: float


def train_pair(preset: str, root: Path, seed: int = 0, nelbo_seqs: int = 512, steps: int | None = None) -> Pair:
    """Train the MDLM (via ``panflow.train``) and the causal baseline on the same budget, evaluating
    both on the same validation sequences at each milestone."""
    cfg = build_config("text", preset, overrides={"train.seed": seed, "train.progress": False,
                                                   **({"train.steps": steps} if steps else {})})
    steps = cfg.train.steps
    cfg.train.checkpoint_every, cfg.train.keep_checkpoints = milestones(steps)[0], len(milestones(steps))
    t0 = time.perf_counter()
    mdlm_dir = train(cfg, root / "mdlm")
    mdlm_s = time.perf_counter() - t0
    mdlm = load_run(mdlm_dir, device="cpu")
    bundle = mdlm.load_data()
    v = mdlm.spec.vocab_size
    bpb = 1 / (LN2 * bundle.meta["bytes_per_token"])
    perm = torch.randperm(len(bundle.val), generator=torch.Generator().manual_seed(seed))
    val = bundle.val.index(perm[:nelbo_seqs])
    nats: dict[int, list[float]] = {}  # step -> [NELBO, AR NLL]
    for step in milestones(steps):
        ck = load_run(mdlm_dir / "checkpoints" / f"step_{step:08d}", device="cpu")
        nats[step] = [ck.objective.nelbo(ck.model, val, repeats=4, seed=seed)]

    def ar_milestone(step, model):
        nats[step].append(autoregressive_nll(model, val, v))

    judge, ar_s = train_autoregressive(cfg, bundle, mdlm.spec, root, seed, ar_milestone)
    curve = [{"step": k, "nelbo_bits_per_byte": ne * bpb, "ar_bits_per_byte": ar * bpb, "ratio": ne / ar}
             for k, (ne, ar) in nats.items()]
    nelbo, ar_nll = nats[steps]
    return Pair(mdlm, judge, bundle, perm, val, bpb, curve, nelbo, ar_nll, mdlm_s, ar_s)


def run_benchmark(preset: str, out_dir, seed: int = 0) -> ScoreCard:
    p = PRESETS[preset]
    root = Path(tempfile.mkdtemp(prefix="panflow-text-bench-"))
    pair = train_pair(preset, root, seed, p["nelbo_seqs"])
    mdlm, judge, bundle, val, bpb, curve = pair.mdlm, pair.judge, pair.bundle, pair.val, pair.bpb, pair.curve
    mdlm_s, ar_s, cfg, nelbo, ar_nll = pair.mdlm_s, pair.ar_s, mdlm.cfg, pair.nelbo, pair.ar_nll
    spec, v = mdlm.spec, mdlm.spec.vocab_size
    n = min(p["n"], len(pair.perm) // 2)
    held, ref = bundle.val.x[pair.perm[:n]], bundle.val.x[pair.perm[n:2 * n]]
    integrand = mdlm.objective.masked_ce_curve(mdlm.model, val, list(CURVE_TIMES), seed=seed)
    card = ScoreCard("text")
    held_ppl = judge_perplexity(judge, held, v)
    card.rows.append(Row("floor", {"judge_ppl": held_ppl, **sample_stats(held, ref)},
                         {"n": n, "seed": seed, "what": "held-out text (judge = the AR baseline)"}))
    t0 = time.perf_counter()
    ar_samples = AutoregressiveObjective(v).generate(judge, (n, spec.shape[0]), generator=torch.Generator().manual_seed(seed))
    card.rows.append(Row("baseline", {"nll_bits_per_token": ar_nll / LN2, "nll_bits_per_byte": ar_nll * bpb,
                                      "judge_ppl": judge_perplexity(judge, ar_samples.x, v),
                                      **sample_stats(ar_samples.x, ref),
                                      "infill_acc": autoregressive_fill_accuracy(judge, v, held[:64], p["span"], seed)},
                         {"n": n, "nfe": ar_samples.nfe, "solver": "autoregressive", "seed": seed,
                          "wall_s": time.perf_counter() - t0, "what": "same transformer, causal, same Trainer/tokens/steps"}))
    sweep = []
    for solver in ("ancestral", "confidence"):
        for k in p["nfes"]:
            gen, setup = mdlm.generate(n, SampleOptions(solver, nfe=k), seed=seed)
            m = {"judge_ppl": judge_perplexity(judge, gen.x, v), **sample_stats(gen.x, ref)}
            sweep.append({"solver": solver, "nfe_budget": k, **setup, **m})
    top = max(p["nfes"])
    best = next(r for r in sweep if r["solver"] == "ancestral" and r["nfe_budget"] == top)
    infill = diffusion_infill_accuracy(mdlm.model, mdlm.objective, held[:64], p["span"], nfe=p["span"], seed=seed)
    card.rows.append(Row("model", {"nelbo_bits_per_token": nelbo / LN2, "nelbo_bits_per_byte": nelbo * bpb,
                                   **{k: best[k] for k in ("judge_ppl", "unigram_entropy", "jsd_2gram", "jsd_3gram")},
                                   "infill_acc": infill},
                         {"n": n, "nfe": best["nfe"], "solver": "ancestral", "seed": seed, "wall_s": best["wall_s"]}))
    floor = card.row("floor").metrics
    card.bars.append(bar("NELBO / AR NLL (equal parameters, steps, tokens)", nelbo / ar_nll, "<=", 1.15))
    card.bars.append(bar("NELBO / AR NLL, stretch", nelbo / ar_nll, "<=", 1.10))
    for r in sweep:
        if r["solver"] != "ancestral":
            continue
        card.bars.append(bar(f"judge ppl / held-out ppl at {r['nfe_budget']} steps", r["judge_ppl"] / held_ppl, "<=", 1.3))
        dev = abs(r["unigram_entropy"] / floor["unigram_entropy"] - 1)
        card.bars.append(bar(f"unigram entropy deviation from held-out at {r['nfe_budget']} steps", dev, "<=", 0.02))
    params = count_parameters(mdlm.model)
    card.extra.update({"sweep": sweep, "by_step": curve,
                       "nelbo_integrand": {"t": list(CURVE_TIMES), "bits_per_byte": [c * bpb for c in integrand]},
                       "training": {"mdlm_s": mdlm_s, "ar_s": ar_s, "steps": cfg.train.steps,
                                                    "batch_size": cfg.train.batch_size, "params": params,
                                                    "seq_len": spec.shape[0], "vocab": v},
                       "corpus": {k: bundle.meta[k] for k in ("source", "documents", "sha256", "train_sequences",
                                                              "val_sequences", "bytes_per_token") if k in bundle.meta},
                       "markdown_sections": [_markdown(sweep, held_ppl, floor["unigram_entropy"]),
                                             _markdown_training(curve, integrand, bpb, ar_nll * bpb)]})
    card.notes += [f"Both models: {params:,} parameters, {cfg.train.steps} steps x {cfg.train.batch_size} sequences of "
                   f"{spec.shape[0]} tokens (vocab {v}); MDLM {mdlm_s:.0f} s, AR {ar_s:.0f} s of training on this CPU.",
                   f"Infilling: centred spans of {p['span']} tokens in 64 held-out sequences; diffusion sees both sides "
                   "(confidence unmasking, NFE = span), the AR baseline only the left context.",
                   "NFE for unmasking counts model calls actually made (steps that unmask nothing reuse the last call)."]
    shutil.rmtree(root, ignore_errors=True)
    return card


def _markdown_training(curve: list[dict], integrand: list[float], bpb: float, ar_bpb: float) -> str:
    lines = ["### NELBO against the AR NLL during training (EMA weights, bits per byte)", "",
             "| step | MDLM NELBO | AR NLL | ratio |", "|---|---|---|---|"]
    lines += [f"| {r['step']} | {r['nelbo_bits_per_byte']:.3f} | {r['ar_bits_per_byte']:.3f} | {r['ratio']:.3f} |"
              for r in curve]
    lines += ["", "### Where the bound is spent: cross-entropy of masked tokens at keep-rate t (final model)", "",
              "NELBO = the integral of this curve over t in [0, 1] (linear schedule); t = fraction of tokens visible. "
              f"The AR baseline's average is {ar_bpb:.3f} bits per byte.", "",
              "| t | " + " | ".join(f"{t:g}" for t in CURVE_TIMES) + " |", "|---|" + "---|" * len(CURVE_TIMES),
              "| bits/byte | " + " | ".join(f"{c * bpb:.3f}" for c in integrand) + " |"]
    return "\n".join(lines)


def _markdown(sweep, held_ppl: float, held_h: float) -> str:
    lines = ["### Samples against the number of unmasking steps", "",
             f"Held-out text: judge ppl {held_ppl:.3f}, unigram entropy {held_h:.3f} bits.", "",
             "| sampler | steps | NFE used | judge ppl | ratio | unigram H | H ratio | JSD 2-gram | JSD 3-gram | s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in sweep:
        lines.append(f"| {r['solver']} | {r['nfe_budget']} | {r['nfe']} | {r['judge_ppl']:.3f} | "
                     f"{r['judge_ppl'] / held_ppl:.3f} | {r['unigram_entropy']:.3f} | {r['unigram_entropy'] / held_h:.3f} | "
                     f"{r['jsd_2gram']:.4f} | {r['jsd_3gram']:.4f} | {r['wall_s']:.2f} |")
    return "\n".join(lines)
