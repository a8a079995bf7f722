"""The text benchmark: masked diffusion against the same transformer made causal and trained as an
autoregressive model by the same Trainer on the same tokens and budget, and against count-based
Kneser–Ney n-grams fitted to the same training tokens.

Headline ``bits_per_byte`` on validation text: the NELBO (an upper bound on the NLL) for the
masked model, the exact NLL for the rest; rows ``baseline · KN bigram`` (what any learned model
must beat), ``reference · KN trigram`` and ``ceiling · AR, equal budget`` (the bound masked
diffusion approaches in the literature). Also reports validation NELBO vs AR NLL (bits per token and
per byte), samples judged by the AR
model's perplexity beside unigram entropy and n-gram divergence from held-out text, against the
number of unmasking steps, and infilling accuracy on held-out spans."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch

from panflow import (
    AutoregressiveObjective,
    Row,
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
from .evaluate import ngram_row, sample_stats
from .metrics import autoregressive_fill_accuracy, diffusion_infill_accuracy, judge_perplexity
from .sweep import PREVIEW_N, ar_speed, kv_cache_speed, label_of, markdown, study

PRESETS = {  # blocks: the masked models trained (0 = MDLM, B = L); nfes: MDLM's ancestral step sweep
    "smoke": {"nfes": [2, 4], "n": 8, "span": 4, "nelbo_seqs": 32, "blocks": (4, 0)},
    "quick": {"nfes": [], "n": 64, "span": 8, "nelbo_seqs": 256, "blocks": ("4:count",)},  # the B-table: text_blocks.py
    "small": {"nfes": [], "n": 128, "span": 8, "nelbo_seqs": 512, "blocks": ("4:count", 0)},
    "full": {"nfes": [8, 16, 32, 64, 128], "n": 512, "span": 16, "nelbo_seqs": 4096, "blocks": ("4:count", 0)},
}
LN2 = math.log(2)


CURVE_TIMES = (0.05, 0.25, 0.5, 0.75, 0.95)


def milestones(steps: int, n: int = 4) -> list[int]:
    """Training steps at which both models are evaluated (the last is the full budget)."""
    return sorted({max(1, steps * i // n) for i in range(1, n + 1)})


def _done(run_dir: Path, steps: int) -> bool:
    """A run directory whose final checkpoint exists (a kept model is reused, not retrained)."""
    return (Path(run_dir) / "checkpoints" / f"step_{steps:08d}" / "contract.json").exists() and \
        (Path(run_dir) / "bench_train.json").exists()


def train_autoregressive(cfg, bundle, spec, root: Path, seed: int, on_milestone) -> tuple[torch.nn.Module, float]:
    """Train the causal baseline, calling ``on_milestone(step, ema_model)`` at each milestone.

    The final EMA weights and the milestone numbers are kept in ``root / "ar"`` (safetensors + JSON),
    so a kept run is reloaded instead of retrained; ``on_milestone`` results are then read back."""
    from safetensors.torch import load_file, save_file

    out = root / "ar"
    torch.manual_seed(seed)
    model = build_transformer(spec, causal=True, **cfg.model.options)
    done = out / "bench_train.json"
    if done.exists() and json.loads(done.read_text()).get("steps") == cfg.train.steps:
        rec = json.loads(done.read_text())
        model.load_state_dict(load_file(str(out / "ema.safetensors")))
        return model.eval(), rec["seconds"]
    trainer = Trainer(model, AutoregressiveObjective(spec.vocab_size), bundle.train,
                      dataclasses.replace(cfg.train, checkpoint_every=0), run_dir=out,
                      contract={"domain": "text", "objective": {"kind": "autoregressive"}})
    spent = 0.0
    for step in milestones(cfg.train.steps):
        t0 = time.perf_counter()
        trainer.fit(until=step)
        spent += time.perf_counter() - t0
        on_milestone(step, trainer.sampling_model.eval())
        trainer.model.train()
    final = trainer.sampling_model.eval()
    save_file({k: v.contiguous() for k, v in final.state_dict().items()}, str(out / "ema.safetensors"))
    done.write_text(json.dumps({"steps": cfg.train.steps, "seconds": spent}))
    return final, spent


def variant(entry) -> tuple[int, str]:
    """A trained masked model: ``4`` (block size, 0 = MDLM) or ``"4:count"`` (with the NELBO estimator)."""
    if isinstance(entry, int):
        return entry, "time"
    b, _, est = str(entry).partition(":")
    return int(b), est or "time"


def run_name(entry) -> str:
    b, est = variant(entry)
    return ("mdlm" if b == 0 else f"block{b}") + ("" if est == "time" else f"-{est}")


def train_masked(preset: str, run_dir: Path, seed: int, block_size, steps: int | None = None) -> tuple[Path, float]:
    """Train (or reuse, if ``run_dir`` holds the finished run) one masked model via ``panflow.train``,
    keeping a checkpoint at each milestone. ``block_size`` 0 = MDLM, else block diffusion; ``"B:count"``
    trains with the count estimator of the NELBO."""
    block_size, est = variant(block_size)
    cfg = build_config("text", preset, overrides={"train.seed": seed, "train.progress": False,
                                                   "flow.block_size": block_size,
                                                   "flow.objective_options": {"estimator": est},
                                                   **({"train.steps": steps} if steps else {})})
    steps = cfg.train.steps
    if _done(run_dir, steps):
        return run_dir, json.loads((run_dir / "bench_train.json").read_text())["seconds"]
    if run_dir.exists():  # an unfinished earlier attempt
        shutil.rmtree(run_dir)
    cfg.train.checkpoint_every, cfg.train.keep_checkpoints = milestones(steps)[0], len(milestones(steps))
    t0 = time.perf_counter()
    train(cfg, run_dir)
    spent = time.perf_counter() - t0
    (run_dir / "bench_train.json").write_text(json.dumps({"steps": steps, "seconds": spent, "block_size": block_size}))
    return run_dir, spent


def milestone_nelbo(run_dir: Path, val, steps: int, seed: int) -> dict[int, float]:
    """Validation NELBO (nats per token, EMA weights) of a masked run at each milestone checkpoint
    (count estimator: the same bound as the continuous-time one, with bounded weights)."""
    out = {}
    for step in milestones(steps):
        ck = load_run(run_dir / "checkpoints" / f"step_{step:08d}", device="cpu")
        out[step] = ck.objective.nelbo(ck.model, val, repeats=4, seed=seed, estimator="count")
    return out


@dataclasses.dataclass
class Pair:
    """The masked models of one budget, their AR baseline, the data they saw and their numbers."""

    mdlm: object          # panflow Run (EMA weights) of the first masked model
    judge: torch.nn.Module
    bundle: object
    perm: torch.Tensor     # seeded permutation of the validation set (first ``nelbo_seqs`` = ``val``)
    val: object            # validation Samples used for NELBO / NLL
    bpb: float             # bits per byte per nat per token
    curve: list[dict]      # NELBO, AR NLL and their ratio at each milestone (bits per byte), first model
    nelbo: float           # final NELBO and AR NLL of the first model, nats per token
    ar_nll: float
    mdlm_s: float
    ar_s: float
    runs: dict = dataclasses.field(default_factory=dict)    # block size -> Run
    curves: dict = dataclasses.field(default_factory=dict)  # block size -> curve (as ``curve``)
    seconds: dict = dataclasses.field(default_factory=dict)  # block size -> training seconds


def runs_root(default: Path, name: str) -> Path:
    """Where the benchmark keeps its trained models: ``$PANFLOW_TEXT_RUNS/name`` (kept and reused
    across invocations, so sampling studies need not retrain) or ``default`` (a temporary directory)."""
    env = os.environ.get("PANFLOW_TEXT_RUNS")
    return Path(env) / name if env else default


def train_pair(preset: str, root: Path, seed: int = 0, nelbo_seqs: int = 512, steps: int | None = None,
               block_sizes: tuple[int, ...] = (0,)) -> Pair:
    """Train the masked models (one per block size, via ``panflow.train``) and the causal baseline on
    the same budget, evaluating all on the same validation sequences at each milestone."""
    cfg = build_config("text", preset, overrides={"train.seed": seed, "train.progress": False,
                                                   **({"train.steps": steps} if steps else {})})
    steps = cfg.train.steps
    runs, seconds, nats = {}, {}, {}
    for bs in block_sizes:
        d, seconds[bs] = train_masked(preset, root / run_name(bs), seed, bs, steps)
        runs[bs] = load_run(d, device="cpu")
    first = runs[block_sizes[0]]
    bundle = first.load_data()
    v = first.spec.vocab_size
    bpb = 1 / (LN2 * bundle.meta["bytes_per_token"])
    perm = torch.randperm(len(bundle.val), generator=torch.Generator().manual_seed(seed))
    val = bundle.val.index(perm[:nelbo_seqs])
    for bs in block_sizes:
        nats[bs] = milestone_nelbo(root / run_name(bs), val, steps, seed)
    ar_by_step: dict[int, float] = {}

    def ar_milestone(step, model):
        ar_by_step[step] = autoregressive_nll(model, val, v)

    rec = root / "ar" / "milestones.json"
    judge, ar_s = train_autoregressive(cfg, bundle, first.spec, root, seed, ar_milestone)
    if ar_by_step:
        rec.write_text(json.dumps({str(k): x for k, x in ar_by_step.items()}))
    else:
        ar_by_step = {int(k): x for k, x in json.loads(rec.read_text()).items()}
    curves = {bs: [{"step": k, "nelbo_bits_per_byte": ne * bpb, "ar_bits_per_byte": ar_by_step[k] * bpb,
                    "ratio": ne / ar_by_step[k]} for k, ne in nats[bs].items()] for bs in block_sizes}
    b0 = block_sizes[0]
    return Pair(first, judge, bundle, perm, val, bpb, curves[b0], nats[b0][steps], ar_by_step[steps], seconds[b0],
                ar_s, runs, curves, seconds)


def run_benchmark(preset: str, out_dir, seed: int = 0, steps: int | None = None, blocks: tuple | None = None) -> ScoreCard:
    """The text score card; ``steps`` / ``blocks`` override the preset's training steps and masked models
    (``benchmarks/text_headline.py``)."""
    p = PRESETS[preset]
    blocks = tuple(blocks or p["blocks"])
    tmp = Path(tempfile.mkdtemp(prefix="panflow-text-bench-"))
    root = runs_root(tmp, f"{preset}-seed{seed}" + (f"-{steps}" if steps else ""))
    pair = train_pair(preset, root, seed, p["nelbo_seqs"], steps=steps, block_sizes=blocks)
    judge, bundle, val, bpb = pair.judge, pair.bundle, pair.val, pair.bpb
    mdlm = pair.runs[0] if 0 in pair.runs else pair.mdlm
    cfg, spec, v, ar_nll = mdlm.cfg, mdlm.spec, mdlm.spec.vocab_size, pair.ar_nll
    nelbos = {bs: pair.curves[bs][-1]["nelbo_bits_per_byte"] / bpb for bs in blocks}  # nats per token
    n = min(p["n"], len(pair.perm) // 2)
    held, ref = bundle.val.x[pair.perm[:n]], bundle.val.x[pair.perm[n:2 * n]]
    integrand = {bs: pair.runs[bs].objective.masked_ce_curve(pair.runs[bs].model, val, list(CURVE_TIMES), seed=seed)
                 for bs in blocks}
    card = ScoreCard("text")
    held_ppl = judge_perplexity(judge, held, v)
    card.rows.append(Row("floor", {"judge_ppl": held_ppl, **sample_stats(held, ref)},
                         {"n": n, "seed": seed, "what": "held-out text (judge = the AR baseline)"}))
    bigram, bigram_x = ngram_row("baseline · KN bigram", 2, bundle, val, ref, n, seed, spec.shape[0], judge, v)
    trigram, _ = ngram_row("reference · KN trigram", 3, bundle, val, ref, n, seed, spec.shape[0], judge, v)
    card.rows += [bigram, trigram]
    t0 = time.perf_counter()
    ar_samples = AutoregressiveObjective(v).generate(judge, (n, spec.shape[0]), generator=torch.Generator().manual_seed(seed))
    card.rows.append(Row("ceiling · AR, equal budget",
                         {"bits_per_byte": ar_nll * bpb, "nll_bits_per_token": ar_nll / LN2, "nll_bits_per_byte": ar_nll * bpb,
                          "judge_ppl": judge_perplexity(judge, ar_samples.x, v),
                          **sample_stats(ar_samples.x, ref),
                          "infill_acc": autoregressive_fill_accuracy(judge, v, held[:64], p["span"], seed)},
                         {"n": n, "nfe": ar_samples.nfe, "solver": "autoregressive", "seed": seed,
                          "wall_s": time.perf_counter() - t0, "what": "same transformer, causal, same Trainer/tokens/steps"}))
    rows, kept = [], []
    for bs in blocks:
        rows += study(pair.runs[bs], bs, judge, ref, n, seed, step_sweep=tuple(p["nfes"]) if bs == 0 else (), kept=kept)
    floor = card.row("floor").metrics
    h0 = floor["unigram_entropy"]
    ok = [r for r in rows if abs(r["unigram_entropy"] / h0 - 1) <= 0.02] or rows
    best = min(ok, key=lambda r: r["judge_ppl"])
    bbest = best["block_size"]
    infill = diffusion_infill_accuracy(mdlm.model, mdlm.objective, held[:64], p["span"], nfe=p["span"], seed=seed)
    card.rows.append(Row("model", {"bits_per_byte": nelbos[bbest] * bpb, "nelbo_bits_per_token": nelbos[bbest] / LN2,
                                   "nelbo_bits_per_byte": nelbos[bbest] * bpb,
                                   **{k: best[k] for k in ("judge_ppl", "unigram_entropy", "jsd_2gram", "jsd_3gram")},
                                   "infill_acc": infill},
                         {"n": n, "nfe": best["nfe"], "solver": best["solver"], "seed": seed, "wall_s": best["wall_s"],
                          "what": f"{best['model']}, {best['setting']} (best judge ppl with unigram entropy within 2%); "
                                  "infill_acc: MDLM, both sides"}))
    card.artifacts.update({"held_out.tokens": held[:PREVIEW_N], "baseline.tokens": bigram_x[:PREVIEW_N],
                           "ar.tokens": ar_samples.x[:PREVIEW_N],
                           "model.tokens": kept[rows.index(best)]})
    four = next((bs for bs in blocks if variant(bs)[0] == 4), None)  # the KV-cache speed is measured at B = 4
    speed = kv_cache_speed(pair.runs[four], min(n, 32), seed, repeats=1) if four is not None else None
    ar_sp = ar_speed(judge, v, n, spec.shape[0], seed)
    for bs in blocks:
        b, _ = variant(bs)
        if b in (0, 4):
            card.bars.append(bar(f"{label_of(bs)} NELBO / AR NLL (equal parameters, steps, tokens)", nelbos[bs] / ar_nll,
                                 "<=", 1.10 if b == 4 else 1.35))
    card.bars.append(bar(f"best non-AR samples ({best['model']}, {best['setting']}): judge ppl / held-out",
                         best["judge_ppl"] / held_ppl, "<=", 2.0))
    card.bars.append(bar("  ... and their unigram entropy deviation from held-out", abs(best["unigram_entropy"] / h0 - 1),
                         "<=", 0.02))
    for r in rows:
        if r["solver"] in ("confidence", "entropy") and r.get("order_noise"):  # the state-ordered samplers
            card.bars.append(bar(f"{r['model']}, {r['setting']}: unigram entropy deviation (no collapse)",
                                 abs(r["unigram_entropy"] / h0 - 1), "<=", 0.05))
    if speed:
        card.bars.append(bar("block 4 sampling tokens/s, KV cache / none", speed["speedup"], ">=", 3.0))
    params = count_parameters(mdlm.model)
    table = [{"block_size": bs, "model": label_of(bs), "nelbo_bits_per_byte": nelbos[bs] * bpb,
              "ratio_to_ar": nelbos[bs] / ar_nll, "train_s": pair.seconds[bs]} for bs in blocks]
    card.extra.update({"sweep": rows, "by_step": pair.curve, "by_step_per_block": {str(k): c for k, c in pair.curves.items()},
                       "blocks": table, "kv_cache": speed, "ar_sampling": ar_sp,
                       "tokenizer": bundle.meta.get("tokenizer", {"type": "byte"}),
                       "nelbo_integrand": {"t": list(CURVE_TIMES),
                                           **{label_of(bs): [c * bpb for c in integrand[bs]] for bs in blocks}},
                       "training": {"seconds": {label_of(bs): pair.seconds[bs] for bs in blocks}, "ar_s": pair.ar_s,
                                    "steps": cfg.train.steps, "batch_size": cfg.train.batch_size, "params": params,
                                    "seq_len": spec.shape[0], "vocab": v},
                       "corpus": {k: bundle.meta[k] for k in ("source", "documents", "sha256", "train_sequences",
                                                              "val_sequences", "bytes_per_token") if k in bundle.meta},
                       "markdown_sections": [_markdown_blocks(table, ar_nll * bpb, speed, ar_sp),
                                             markdown(rows, held_ppl, h0),
                                             _markdown_training(pair.curves, integrand, bpb, ar_nll * bpb)]})
    card.notes += [f"All models: {params:,} parameters, {cfg.train.steps} steps x {cfg.train.batch_size} sequences of "
                   f"{spec.shape[0]} tokens (vocab {v}); training s: "
                   + ", ".join(f"{label_of(bs)} {pair.seconds[bs]:.0f}" for bs in blocks) + f", AR {pair.ar_s:.0f} "
                   "(block diffusion runs the two streams [z_t, x], 2L tokens, per step).",
                   f"Infilling: centred spans of {p['span']} tokens in 64 held-out sequences; MDLM sees both sides "
                   "(confidence unmasking, NFE = span), the AR baseline only the left context.",
                   "NFE counts model calls actually made (steps that change nothing reuse the last call); block "
                   "diffusion shares the steps evenly between blocks."]
    if os.environ.get("PANFLOW_TEXT_RUNS"):
        card.notes.append(f"Trained models kept in {root} ($PANFLOW_TEXT_RUNS) and reused if already trained there "
                          "with the same budget.")
    shutil.rmtree(tmp, ignore_errors=True)
    return card


def _markdown_blocks(table: list[dict], ar_bpb: float, speed: dict | None, ar_sp: dict) -> str:
    lines = ["### NELBO against the block size (equal parameters, steps, tokens)", "",
             f"AR baseline: {ar_bpb:.3f} bits per byte.", "", "| model | NELBO bits/byte | / AR NLL | training s |",
             "|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['nelbo_bits_per_byte']:.3f} | {r['ratio_to_ar']:.3f} | {r['train_s']:.0f} |"
              for r in table]
    if speed:
        lines += ["", f"Sampling speed at B = {speed['block_size']} ({speed['n']} sequences x {speed['seq_len']} tokens, "
                  "ancestral, one step per token): KV cache "
                  f"{speed['cache']['tokens_per_s']:.0f} tokens/s vs {speed['no_cache']['tokens_per_s']:.0f} re-reading "
                  f"the finished blocks: {speed['speedup']:.2f}x; same tokens {100 * speed['same_tokens']:.1f}%. "
                  f"The AR baseline (no cache) samples {ar_sp['tokens_per_s']:.0f} tokens/s."]
    return "\n".join(lines)


def _markdown_training(curves: dict, integrand: dict, bpb: float, ar_bpb: float) -> str:
    blocks = list(curves)
    first = curves[blocks[0]]
    lines = ["### NELBO against the AR NLL during training (EMA weights, bits per byte)", "",
             "| step | AR NLL | " + " | ".join(f"{label_of(b)} | ratio" for b in blocks) + " |",
             "|---|---|" + "---|---|" * len(blocks)]
    for i, r in enumerate(first):
        cells = " | ".join(f"{curves[b][i]['nelbo_bits_per_byte']:.3f} | {curves[b][i]['ratio']:.3f}" for b in blocks)
        lines.append(f"| {r['step']} | {r['ar_bits_per_byte']:.3f} | {cells} |")
    lines += ["", "### Where the bound is spent: cross-entropy of masked tokens at keep-rate t (final models)", "",
              "For MDLM, NELBO = the integral of this curve over t in [0, 1] (linear schedule); t = fraction of tokens "
              f"visible (every block at the same t). The AR baseline's average is {ar_bpb:.3f} bits per byte.", "",
              "| model | " + " | ".join(f"t = {t:g}" for t in CURVE_TIMES) + " |", "|---|" + "---|" * len(CURVE_TIMES)]
    lines += [f"| {label_of(b)} | " + " | ".join(f"{c * bpb:.3f}" for c in integrand[b]) + " |" for b in blocks]
    return "\n".join(lines)
