"""Registers the text domain, its corpora, the token transformer and the benchmark."""

from __future__ import annotations

from pathlib import Path

import panflow
from panflow import Backbone, Benchmark, Dataset, DataSpec, Domain, Encoder, Metric, lazy

from . import __version__


class TokenEncoder(Encoder):
    """Tokens are the model space (tokenisation is part of the dataset); ids pass through."""

    def config(self):
        return {"type": "tokens"}


def _spec(bundle) -> DataSpec:
    return DataSpec("discrete", (int(bundle.train.x.shape[1]),), vocab_size=int(bundle.meta["vocab_size"]))


def _make_encoder(options):
    if options:
        raise panflow.ConfigError(f"the text encoder takes no options (got {sorted(options)}); "
                                  "tokenizer settings live in data.options")
    return TokenEncoder()


def write_text(samples, out_dir, meta=None) -> list[Path]:
    """One text file per sequence (``sample_00000.txt``, ...), decoded with the run's tokenizer."""
    from .tokenizer import tokenizer_from_json

    tok = tokenizer_from_json((meta or {}).get("tokenizer", {"type": "byte"}))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for i, row in enumerate(samples.x.tolist()):
        p = out / f"sample_{i:05d}.txt"
        p.write_text(tok.decode(row), encoding="utf-8")
        files.append(p)
    return files


def encode_prompt(text: str, meta: dict) -> list[int]:
    """``panflow sample RUN --prefix TEXT``: the prefix in the run's own tokenizer."""
    from .tokenizer import tokenizer_from_json

    return tokenizer_from_json((meta or {}).get("tokenizer", {"type": "byte"})).encode(text)


def _load_user(opts):
    if not opts.path:
        raise panflow.DataError("dataset 'corpus' needs --data PATH (a text file, a folder of text files, or JSONL)")
    return lazy("panflow_text.data:load_text")(opts)


SMALL = {"train.steps": 4000, "train.batch_size": 32, "train.lr": 1e-3, "train.warmup_steps": 200,
         "train.lr_schedule": "cosine", "train.min_lr_ratio": 0.1, "train.ema_decay": 0.999, "train.ema_warmup": True,
         "train.grad_clip": 1.0, "train.weight_decay": 0.01, "train.log_every": 100, "data.options": {"seq_len": 64},
         "model.options": {"dim": 128, "depth": 4, "heads": 4}, "sample.solver": "ancestral", "sample.nfe": 64}
PRESETS = {
    "smoke": {"train.steps": 3, "train.batch_size": 8, "train.log_every": 1,
              "data.options": {"seq_len": 32, "max_train_sequences": 256},
              "model.options": {"dim": 32, "depth": 1, "heads": 2}, "sample.solver": "ancestral", "sample.nfe": 4},
    "quick": {**SMALL, "train.steps": 600, "train.warmup_steps": 50, "flow.block_size": 4,
              "model.options": {"dim": 64, "depth": 2, "heads": 2}},
    "small": SMALL,
    "full": {**SMALL, "train.steps": 100_000, "train.batch_size": 256, "train.lr": 3e-4, "train.compile": True,
             "data.options": {"seq_len": 512, "tokenizer": "bpe", "vocab_size": 8192},
             "model.options": {"dim": 768, "depth": 12, "heads": 12}, "train.checkpoint_every": 5000},
}


class TextPlugin:
    PANFLOW_HOOK_API = 1
    REQUIRES: dict = {}  # byte-level needs nothing; the optional BPE tokenizer imports `tokenizers` on use
    __version__ = __version__

    @panflow.hookimpl
    def panflow_register(self, registry) -> None:
        registry.add_domain(Domain(
            name="text", description="token sequences by masked (absorbing-state) diffusion",
            default_dataset="python", default_backbone="transformer", data_spec=_spec, objective="masked",
            make_encoder=_make_encoder, load_encoder=lambda cfg, t: TokenEncoder(), write_samples=write_text,
            evaluate=lazy("panflow_text.evaluate:evaluate"), presets=PRESETS, encode_prompt=encode_prompt,
            metrics=("nelbo", "judge_ppl", "unigram_entropy", "jsd", "infill_acc")))
        registry.add_dataset(Dataset("python", "text", lazy("panflow_text.data:load_text"),
                                     "Python's standard-library source + pydoc topics (offline, fixed file list)"))
        registry.add_dataset(Dataset("corpus", "text", _load_user, "your text: a file, a folder of files, or JSONL"))
        registry.add_backbone(Backbone("transformer", lazy("panflow_text.backbones:build_transformer"), ("discrete",), None,
                                       "bidirectional (or causal=true) transformer with adaLN time conditioning"))
        registry.add_metric(Metric("unigram", "text", lazy("panflow_text.metrics:unigram_metrics"),
                                   description="unigram entropy and 2-gram JSD"))
        registry.add_benchmark(Benchmark("text", "text", lazy("panflow_text.benchmark:run_benchmark"),
                                         "masked and block diffusion vs n-gram and autoregressive baselines",
                                         headline=("bits_per_byte",),
                                         presets=("smoke", "quick", "small", "full"),
                                         previews=lazy("panflow_text.previews:previews")))


plugin = TextPlugin()
