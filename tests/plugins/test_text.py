import json

import pytest
import torch

from panflow import DataError, DatasetOptions, DataSpec
from panflow.bench import run_benchmarks
from panflow.cli import main
from panflow_text.backbones import build_transformer
from panflow_text.corpus import STDLIB_FILES, python_corpus, user_corpus
from panflow_text.data import load_text
from panflow_text.metrics import ngram_jsd, unigram_entropy
from panflow_text.tokenizer import BPETokenizer, ByteTokenizer


def test_default_corpus_is_fixed_and_deterministic():
    a, b = python_corpus(0.1), python_corpus(0.1)
    assert a.meta["sha256"] == b.meta["sha256"] and a.val == b.val
    assert a.meta["files"] == list(STDLIB_FILES) and a.meta["topics"] > 10
    assert len(a.val) > 0 and a.meta["train_chars"] > 1_000_000


def test_user_corpus_formats_and_errors(tmp_path):
    (tmp_path / "one.txt").write_text("hello world\n" * 50)
    assert user_corpus(str(tmp_path / "one.txt")).train
    d = tmp_path / "folder"
    d.mkdir()
    for i in range(12):
        (d / f"{i}.md").write_text(f"doc {i} " * 20)
    c = user_corpus(str(d))
    assert len(c.train) + len(c.val) == 12
    (tmp_path / "x.jsonl").write_text("\n".join(json.dumps({"text": f"line {i}"}) for i in range(20)))
    assert len(user_corpus(str(tmp_path / "x.jsonl")).val) == 2
    (tmp_path / "bad.jsonl").write_text('{"body": "x"}\n')
    with pytest.raises(DataError, match="no string field 'text'"):
        user_corpus(str(tmp_path / "bad.jsonl"))
    (tmp_path / "bin.txt").write_bytes(b"\x00\x01\x02abc")
    with pytest.raises(DataError, match="looks binary"):
        user_corpus(str(tmp_path / "bin.txt"))
    (tmp_path / "latin.txt").write_bytes("caf\xe9 ".encode("latin-1") * 30)
    with pytest.raises(DataError, match="not valid utf-8.*encoding"):
        user_corpus(str(tmp_path / "latin.txt"))
    assert user_corpus(str(tmp_path / "latin.txt"), encoding="bytes").train
    (tmp_path / "empty.txt").write_text("   \n")
    with pytest.raises(DataError, match="empty"):
        user_corpus(str(tmp_path / "empty.txt"))


def test_tokenizers_round_trip():
    text = "def f(x):\n    return x * 2  # café ☕\n"
    assert ByteTokenizer().decode(ByteTokenizer().encode(text)) == text
    bpe = BPETokenizer.train([text * 20, "import os\nprint('hi')\n" * 20], vocab_size=300)
    assert bpe.decode(bpe.encode(text)) == text
    assert len(bpe.encode(text)) < len(text.encode())


def test_chunking_and_sequence_length_errors(tmp_path):
    (tmp_path / "c.txt").write_text("abcdefgh" * 100)
    b = load_text(DatasetOptions(str(tmp_path / "c.txt"), options={"seq_len": 16}))
    assert b.train.x.shape[1] == 16 and b.meta["bytes_per_token"] == pytest.approx(1.0)
    with pytest.raises(DataError, match="fewer than one sequence"):
        load_text(DatasetOptions(str(tmp_path / "c.txt"), options={"seq_len": 100_000}))
    with pytest.raises(DataError, match="exceed the model's max_len"):
        build_transformer(DataSpec("discrete", (64,), vocab_size=256), dim=16, depth=1, heads=2, max_len=32)
    m = build_transformer(DataSpec("discrete", (8,), vocab_size=256), dim=16, depth=1, heads=2)
    with pytest.raises(DataError, match="exceeds the model's maximum"):
        m(torch.zeros(1, 9, dtype=torch.long), torch.ones(1))
    with pytest.raises(DataError, match="unknown text data option"):
        load_text(DatasetOptions(str(tmp_path / "c.txt"), options={"seqlen": 16}))


def test_causal_model_does_not_see_the_future():
    m = build_transformer(DataSpec("discrete", (6,), vocab_size=10), dim=16, depth=2, heads=2, causal=True)
    for p in m.parameters():  # break the zero-init so outputs depend on inputs
        torch.nn.init.normal_(p, std=0.3)
    a = torch.tensor([[1, 2, 3, 4, 5, 6]])
    b = torch.tensor([[1, 2, 3, 9, 9, 9]])
    la, lb = m(a, torch.ones(1)), m(b, torch.ones(1))
    assert torch.allclose(la[:, :3], lb[:, :3]) and not torch.allclose(la[:, 3:], lb[:, 3:])


def test_bidirectional_model_learns_to_use_its_neighbours():
    """Sequences x_l = x_0 + l (mod V): a masked token is determined by either visible neighbour.
    After a short masked-diffusion run the bidirectional transformer must predict well from context
    (log V = 3.47 nats is what ignoring it costs); the same run with learned absolute positions
    is what made the first text benchmark's model ignore its context."""
    from panflow import MaskedObjective, Samples, TrainConfig, Trainer

    v, length = 32, 16
    start = torch.randint(0, v, (4096, 1), generator=torch.Generator().manual_seed(0))
    data = Samples((start + torch.arange(length)) % v)
    torch.manual_seed(0)
    model = build_transformer(DataSpec("discrete", (length,), vocab_size=v), dim=32, depth=2, heads=2)
    obj = MaskedObjective(v)
    cfg = TrainConfig(steps=150, batch_size=64, lr=3e-3, ema_decay=0.0, progress=False, device="cpu", log_every=50)
    Trainer(model, obj, data, cfg).fit()
    ce_context, ce_blind = obj.masked_ce_curve(model.eval(), data.index(slice(0, 512)), [0.9, 0.0])
    assert ce_blind > 0.8 * torch.log(torch.tensor(float(v)))  # all masked: nothing to go on
    assert ce_context < 0.5, ce_context  # 99% of masked tokens here have a visible neighbour


def test_text_metrics():
    u = torch.arange(256).repeat(4)[None]
    assert unigram_entropy(u) == pytest.approx(8.0)
    x = torch.randint(0, 5, (4, 50), generator=torch.Generator().manual_seed(0))
    assert ngram_jsd(x, x, 2) == pytest.approx(0.0)
    assert ngram_jsd(x, x + 10, 2) == pytest.approx(1.0)


def test_cli_smoke_writes_text(tmp_path):
    run = tmp_path / "run"
    assert main(["train", "text", "--preset", "smoke", "--out", str(run)]) == 0
    assert main(["sample", str(run), "--n", "3", "--nfe", "4", "--out", str(tmp_path / "t")]) == 0
    assert len(list((tmp_path / "t").glob("sample_*.txt"))) == 3
    assert main(["eval", str(run), "--n", "8"]) == 0


def test_bpe_run_records_tokenizer(tmp_path):
    (tmp_path / "c.txt").write_text("the quick brown fox jumps over the lazy dog. " * 400)
    run = tmp_path / "bpe"
    assert main(["train", "text", "--preset", "smoke", "--data", str(tmp_path / "c.txt"), "--out", str(run),
                 "--set", 'data.options={seq_len=16, tokenizer="bpe", vocab_size=300}']) == 0
    contract = json.loads((next((run / "checkpoints").glob("step_*")) / "contract.json").read_text())
    assert contract["dataset"]["tokenizer"]["type"] == "bpe" and contract["data_spec"]["vocab_size"] <= 300
    assert main(["sample", str(run), "--n", "2", "--nfe", "4", "--out", str(tmp_path / "t")]) == 0


def test_benchmark_smoke(tmp_path):
    paths = run_benchmarks(["text"], "smoke", tmp_path, log=lambda m: None)
    result = json.loads(paths["text"].read_text())
    assert [r["role"] for r in result["rows"]] == ["floor", "baseline · KN bigram", "reference · KN trigram",
                                                   "ceiling · AR, equal budget", "model"]
    assert all("bits_per_byte" in r["metrics"] for r in result["rows"][1:])
    assert result["training"]["params"] > 0 and result["sweep"]
