"""Token datasets: a corpus, tokenised, concatenated and cut into ``[N, seq_len]`` chunks.

Raw space is token ids (int64). The tokenizer (and the bytes-per-token ratio used to report bits
per byte) travels in the dataset meta, which the checkpoint contract records.
"""

from __future__ import annotations

import torch

from panflow import DataBundle, DataError, DatasetOptions, Samples

from .corpus import python_corpus, user_corpus
from .tokenizer import make_tokenizer


def chunk(texts: list[str], tok, seq_len: int, what: str = "the corpus") -> tuple[torch.Tensor, int]:
    """Tokenise documents (joined by a blank line) and cut into whole ``seq_len`` chunks."""
    ids: list[int] = []
    n_bytes = 0
    for t in texts:
        ids += tok.encode(t + "\n\n")
        n_bytes += len((t + "\n\n").encode("utf-8", "surrogateescape"))
    n = len(ids) // seq_len
    if n == 0:
        raise DataError(f"{what} gives {len(ids)} tokens, fewer than one sequence of {seq_len}; "
                        "lower data.options.seq_len or add text")
    return torch.tensor(ids[: n * seq_len], dtype=torch.long).reshape(n, seq_len), n_bytes


def load_text(opts: DatasetOptions) -> DataBundle:
    o = dict(opts.options)
    seq_len = int(o.pop("seq_len", 128))
    kind = o.pop("tokenizer", "byte")
    vocab = int(o.pop("vocab_size", 1024))
    encoding = o.pop("encoding", "utf-8")
    field = o.pop("field", "text")
    max_train = int(o.pop("max_train_sequences", 0))
    if o:
        raise DataError(f"unknown text data option(s) {sorted(o)}; known: seq_len, tokenizer, vocab_size, "
                        "encoding, field, max_train_sequences")
    if seq_len < 2:
        raise DataError(f"seq_len must be at least 2, got {seq_len}")
    corpus = user_corpus(opts.path, opts.val_fraction, encoding, field) if opts.path else python_corpus(opts.val_fraction)
    tok = make_tokenizer(kind, corpus.train, vocab)
    src = corpus.meta.get("source")
    train, _ = chunk(corpus.train, tok, seq_len, f"the training split of {src}")
    val, val_bytes = chunk(corpus.val, tok, seq_len, f"the validation split of {src}")
    if max_train:
        train = train[:max_train]
    # bytes per token over the chunked validation stream (for bits per byte)
    val_tokens = sum(len(tok.encode(t + "\n\n")) for t in corpus.val)
    meta = {**corpus.meta, "tokenizer": tok.to_json(), "vocab_size": tok.vocab_size, "seq_len": seq_len,
            "bytes_per_token": val_bytes / max(1, val_tokens), "train_sequences": int(train.shape[0]),
            "val_sequences": int(val.shape[0])}
    return DataBundle(Samples(train), Samples(val), meta)
