"""Tokenisers: bytes (default, no download) or a byte-level BPE learned on the user's corpus
(Hugging Face ``tokenizers``). Both round-trip text exactly."""

from __future__ import annotations

import json

from panflow import ConfigError


def _tokenizers():
    try:
        import tokenizers
    except ImportError as exc:
        raise ConfigError('the BPE tokenizer needs the Hugging Face tokenizers library: pip install "panflow[text]"') from exc
    return tokenizers


class ByteTokenizer:
    name = "byte"
    vocab_size = 256

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8", "surrogateescape"))

    def decode(self, ids: list[int]) -> str:
        return bytes(int(i) for i in ids).decode("utf-8", "replace")

    def to_json(self) -> dict:
        return {"type": "byte"}


class BPETokenizer:
    name = "bpe"

    def __init__(self, tok):
        self.tok = tok
        self.vocab_size = tok.get_vocab_size()

    @classmethod
    def train(cls, texts: list[str], vocab_size: int = 1024) -> BPETokenizer:
        tk = _tokenizers()
        Tokenizer, decoders, models, pre_tokenizers, trainers = (tk.Tokenizer, tk.decoders, tk.models,
                                                                 tk.pre_tokenizers, tk.trainers)
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                      special_tokens=[], show_progress=False)
        tok.train_from_iterator(texts, trainer=trainer)
        return cls(tok)

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text).ids

    def decode(self, ids: list[int]) -> str:
        return self.tok.decode([int(i) for i in ids])

    def to_json(self) -> dict:
        return {"type": "bpe", "tokenizer": self.tok.to_str()}


def tokenizer_from_json(d: dict):
    if d.get("type") == "byte":
        return ByteTokenizer()
    if d.get("type") == "bpe":
        try:
            return BPETokenizer(_tokenizers().Tokenizer.from_str(d["tokenizer"]))
        except Exception as exc:
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"the BPE tokenizer recorded in the checkpoint is corrupted: {exc}") from exc
    raise ConfigError(f"unknown tokenizer {json.dumps(d)[:80]}")


def make_tokenizer(kind: str, train_texts: list[str], vocab_size: int):
    if kind == "byte":
        return ByteTokenizer()
    if kind == "bpe":
        return BPETokenizer.train(train_texts, vocab_size)
    raise ConfigError(f"unknown tokenizer '{kind}' (byte | bpe)")
