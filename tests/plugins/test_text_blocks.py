"""Block diffusion (panflow.blocks + MaskedObjective(block_size)) on the text transformer: the two
identities (B = 1 is an autoregressive model, B = L is MDLM), the KV cache, prefixes and stops."""

import pytest
import torch
import torch.nn.functional as F

from panflow import DataSpec, MaskedObjective, SampleOptions, Samples, block_allow
from panflow_text.backbones import build_transformer

V, L = 11, 12


def _model(causal=False, seed=0):
    torch.manual_seed(seed)
    m = build_transformer(DataSpec("discrete", (L,), vocab_size=V), dim=32, depth=2, heads=2, causal=causal)
    for p in m.parameters():  # adaLN-zero starts as the identity: give every layer a say
        p.data.normal_(0, 0.2)
    return m.double().eval()


def _data(n=3, seed=1):
    return torch.randint(0, V, (n, L), generator=torch.Generator().manual_seed(seed))


def test_block_allow_pattern():
    pos = torch.arange(4)
    clean = torch.tensor([False, False, True, True])
    allow = block_allow(torch.cat([pos[:2], pos[:2]]), clean, torch.cat([pos[:2], pos[:2]]), clean, 1)
    # queries/keys: noisy 0, noisy 1, clean 0, clean 1
    assert allow.tolist() == [[True, False, False, False], [False, True, True, False],
                              [False, False, True, False], [False, False, True, True]]


def test_block_size_one_is_an_autoregressive_model():
    """B = 1: every token is its own block, so when it is masked its prediction sees exactly the clean
    tokens before it. With all tokens masked (t = 0, weight 1) the two-stream NELBO equals the NLL of
    the same weights run causally on each prefix followed by a mask, one call per position; and since a
    lone token is either masked or not, that is the bound at every t (the integrand is constant)."""
    bd, causal = _model(), _model(causal=True)
    causal.load_state_dict(bd.state_dict())
    x = _data()
    obj = MaskedObjective(V, block_size=1)
    rand = {"t": torch.zeros(3, L, dtype=torch.float64), "u": torch.ones(3, L, dtype=torch.float64)}
    per_seq, count = obj.token_nelbo(bd, Samples(x), rand)
    ar = 0.0
    for pos in range(L):
        inp = torch.cat([x[:, :pos], torch.full((3, 1), V)], 1)
        logits = causal(inp, torch.zeros(3, dtype=torch.float64), {})[:, pos]
        ar = ar + F.cross_entropy(logits, x[:, pos], reduction="none")
    torch.testing.assert_close(per_seq, ar, rtol=1e-6, atol=1e-5)  # the loss takes CE in float32
    assert count.tolist() == [L] * 3


def test_block_size_L_is_mdlm():
    """B = L through the two-stream path (the clean copy is never attended) equals plain MDLM."""
    m, x = _model(), _data()
    mdlm, bd = MaskedObjective(V), MaskedObjective(V, block_size=L)
    rand = mdlm.draw(3, x, torch.Generator().manual_seed(0))
    rand = {k: v.double() for k, v in rand.items()}
    a, _ = mdlm.token_nelbo(m, Samples(x), rand)
    z = torch.where(rand["u"] < rand["t"][:, None], x, torch.full_like(x, V))
    from panflow.blocks import two_stream

    inp, att = two_stream(z, x, L)
    logits = m(inp, rand["t"], {}, attention=att)[:, :L]
    ce = F.cross_entropy(logits.transpose(1, 2), x, reduction="none")
    b = (ce * (z == V) / (1 - rand["t"][:, None])).sum(1)
    torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-5)
    assert bd.blocks(L) == L  # and the objective itself takes the single-stream path


def test_two_stream_matches_separate_calls_per_block():
    """Block b's predictions from the vectorised two-stream call equal a call on [clean blocks < b,
    noisy block b] alone (B = 4, L = 12)."""
    m, x = _model(), _data()
    obj = MaskedObjective(V, block_size=4)
    rand = obj.draw(3, x, torch.Generator().manual_seed(3))
    assert rand["t"].shape == (3, 3)
    tt = obj._token_time(rand["t"], L)
    z = torch.where(rand["u"] < tt, x, torch.full_like(x, V))
    full = obj.logits(m, z, x, torch.zeros(3), {})
    for k in range(3):
        s0 = 4 * k
        from panflow.blocks import context_call

        inp, att = context_call(x[:, :s0], z[:, s0:s0 + 4], s0, 4, None)
        part = m(inp, torch.zeros(3), {}, attention=att)[:, s0:]
        torch.testing.assert_close(full[:, s0:s0 + 4], part, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("solver", ["ancestral", "confidence", "remdm"])
def test_kv_cache_gives_the_same_samples_with_a_prefix(solver):
    m = _model()
    obj = MaskedObjective(V, block_size=4)
    known = torch.zeros(4, L, dtype=torch.bool)
    known[:, :5] = True  # a prefix that ends inside the second block
    xk = torch.randint(0, V, (4, L), generator=torch.Generator().manual_seed(5))
    opts = SampleOptions(solver, nfe=12, remask=0.3, order_noise=1.0)
    a = obj.generate(m, (4, L), opts, generator=torch.Generator().manual_seed(0), known=known, x_known=xk)
    b = obj.generate(m, (4, L), opts, generator=torch.Generator().manual_seed(0), known=known, x_known=xk,
                     kv_cache=False)
    assert torch.equal(a.x, b.x) and a.nfe == b.nfe
    assert torch.equal(a.x[:, :5], xk[:, :5]) and bool((a.x < V).all())
    assert a.nfe <= 12


def test_stop_token_ends_sequences_early():
    m = _model()
    obj = MaskedObjective(V, block_size=4)
    known = torch.zeros(2, L, dtype=torch.bool)
    known[:, 2] = True
    xk = torch.full((2, L), 7)  # the stop token is given in the first block of every row
    res = obj.generate(m, (2, L), SampleOptions("ancestral", nfe=12, stop_token=7),
                       generator=torch.Generator().manual_seed(0), known=known, x_known=xk)
    assert bool((res.x[:, 2:] == 7).all()) and res.nfe <= 4  # only the first block was denoised


def test_block_size_is_in_the_contract_and_validated():
    from panflow import ConfigError

    obj = MaskedObjective(V, block_size=4)
    assert MaskedObjective.from_json(obj.to_json()).block_size == 4
    assert "block_size" not in MaskedObjective(V).to_json()  # MDLM checkpoints are unchanged
    with pytest.raises(ConfigError, match="block_size"):
        MaskedObjective(V, block_size=-1)


@pytest.mark.slow
def test_cli_block_diffusion_with_prefix(tmp_path, capsys):
    from panflow.cli import main

    run = tmp_path / "run"
    assert main(["train", "text", "--preset", "smoke", "--out", str(run), "--set", "flow.block_size=4"]) == 0
    contract = (next((run / "checkpoints").glob("step_*")) / "contract.json").read_text()
    assert '"block_size": 4' in contract
    out = tmp_path / "s"
    assert main(["sample", str(run), "--prefix", "def ", "--n", "8", "--top-p", "0.9", "--out", str(out)]) == 0
    files = sorted(out.glob("sample_*.txt"))
    assert len(files) == 8 and all(f.read_text().startswith("def ") for f in files)
    assert main(["sample", str(run), "--prefix", "x" * 40, "--n", "2", "--out", str(out)]) == 2
    assert "--prefix gives 40 tokens" in capsys.readouterr().err
    assert main(["sample", str(run), "--prefix", "def ", "--n", "2", "--solver", "remdm", "--remask", "0.1",
                 "--out", str(out)]) == 0


@pytest.mark.slow
def test_block_table_script_smoke(tmp_path):
    import json
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    import text_blocks

    text_blocks.main(["--preset", "smoke", "--blocks", "2,0", "--n", "4", "--nelbo-seqs", "16", "--out", str(tmp_path)])
    d = json.loads((tmp_path / "text_blocks.json").read_text())
    assert [b["block_size"] for b in d["blocks"]] == [2, 0] and d["blocks"][0]["samples"]


def _exact_block_nelbo(obj, m, x, b):
    """Σ_blocks Σ_k (1/k) E_{|S|=k}[Σ_{l∈S} CE_l]: the NELBO by enumerating every masked subset."""
    import itertools
    import math

    n, length = x.shape
    total = torch.zeros(n, dtype=torch.float64)
    for s0 in range(0, length, b):
        idx = list(range(s0, min(length, s0 + b)))
        for k in range(1, len(idx) + 1):
            for sub in itertools.combinations(idx, k):
                z = x.clone()
                z[:, list(sub)] = V
                ce = F.cross_entropy(obj.logits(m, z, x, torch.zeros(n), {}).transpose(1, 2), x, reduction="none")
                total += ce[:, list(sub)].sum(1) / k / math.comb(len(idx), k)
    return total


@pytest.mark.slow
def test_count_and_time_estimators_are_unbiased_for_the_exact_bound():
    """L = 6, B = 3: the mean of many draws of either estimator matches the bound computed by
    enumerating every masked subset; the count estimator's spread is smaller."""
    m, x = _model(), _data(n=2)[:, :6]
    m.max_len = L
    obj_t, obj_c = MaskedObjective(V, block_size=3), MaskedObjective(V, block_size=3, estimator="count")
    exact = _exact_block_nelbo(obj_t, m, x, 3)
    g = torch.Generator().manual_seed(0)
    draws = {"time": [], "count": []}
    for _ in range(200):
        for name, o in (("time", obj_t), ("count", obj_c)):
            draws[name].append(o.token_nelbo(m, Samples(x), o.draw(2, x, g))[0])
    for name, d in draws.items():
        d = torch.stack(d)
        se = d.std(0) / len(d) ** 0.5
        assert bool(((d.mean(0) - exact).abs() < 4 * se + 1e-6).all()), name
    assert bool((torch.stack(draws["count"]).std(0) < torch.stack(draws["time"]).std(0)).all())


def test_count_estimator_at_block_size_one_is_the_exact_nll():
    m, x = _model(), _data()
    obj = MaskedObjective(V, block_size=1, estimator="count")
    a, _ = obj.token_nelbo(m, Samples(x), obj.draw(3, x, torch.Generator().manual_seed(0)))
    b, _ = obj.token_nelbo(m, Samples(x), obj.draw(3, x, torch.Generator().manual_seed(1)))
    torch.testing.assert_close(a, b)  # one token per block: always masked, weight 1 — no randomness left
    assert MaskedObjective.from_json(obj.to_json()).estimator == "count"
