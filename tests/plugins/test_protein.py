import math

import numpy as np
import pytest
import torch

pytest.importorskip("biotite")
pytest.importorskip("MDAnalysisTests")

from panflow import DataError, DatasetOptions, build_config, load_run, train  # noqa: E402
from panflow.testing import assert_plugin_conforms  # noqa: E402
from panflow_protein import embedded  # noqa: E402
from panflow_protein import metrics as M  # noqa: E402
from panflow_protein.baseline import random_walks  # noqa: E402
from panflow_protein.data import load_ensemble, load_pdb  # noqa: E402
from panflow_protein.io import write_structures  # noqa: E402
from panflow_protein.known import MotifKnown  # noqa: E402
from panflow_protein.objective import random_rotations  # noqa: E402
from panflow_protein.structure_io import ReadReport, chain_records, expand_paths, write_structure  # noqa: E402
from panflow_protein.tasks import scaffold  # noqa: E402


def ideal_helix(n: int) -> np.ndarray:
    """α-helix Cα trace: radius 2.3 Å, rise 1.5 Å and 100° per residue (Cα–Cα = 3.83 Å)."""
    k = np.arange(n)
    a = np.deg2rad(100.0) * k
    return np.stack([2.3 * np.cos(a), 2.3 * np.sin(a), 1.5 * k], 1)


def pdb_line(serial, name, res, chain, resid, xyz, altloc=" ", ins=" ", occ=1.0, het=False):
    rec = "HETATM" if het else "ATOM  "
    return (f"{rec}{serial:5d} {name:<4s}{altloc}{res:>3s} {chain}{resid:4d}{ins}   "
            f"{xyz[0]:8.3f}{xyz[1]:8.3f}{xyz[2]:8.3f}{occ:6.2f}{0.0:6.2f}          {'C' if name != 'O' else 'O':>2s}")


def write_pdb(path, ca, res="ALA", chain="A", resids=None, extra=()):
    resids = resids if resids is not None else range(1, len(ca) + 1)
    lines = [pdb_line(i + 1, "CA", res, chain, r, c) for i, (r, c) in enumerate(zip(resids, ca))]
    path.write_text("\n".join([*lines, *extra, "END"]) + "\n")
    return path


# -- readers on real files ---------------------------------------------------------------------------
def test_embedded_chain_reads_with_sequence_and_length():
    f = embedded.data_dir() / "dssp" / "1ahsA.pdb.gz"
    (rec,) = chain_records(f)
    assert rec.chain == "A" and len(rec.ca) == 126 and len(rec.seq) == 126
    assert set(rec.seq) <= set("ACDEFGHIKLMNPQRSTVWYX")
    assert M.bond_validity([rec.ca]) > 0.95


def test_multi_model_nmr_ensemble_gives_one_record_per_model():
    f = embedded.ensemble_file()
    assert len(chain_records(f)) == 1
    recs = chain_records(f, models="all")
    assert [r.model for r in recs] == list(range(1, 25)) and {len(r.ca) for r in recs} == {28}
    assert not np.allclose(recs[0].ca, recs[1].ca)


def test_real_mmcif_and_short_chain_counted(tmp_path):
    d = embedded.data_dir() / "mmcif"
    (bpti,) = chain_records(d / "5PTI.cif.gz")
    assert len(bpti.ca) == 58
    rep = ReadReport()
    assert chain_records(d / "1YJP.cif", report=rep) == []  # a 7-residue peptide
    assert rep.short_dropped == 1 and "1YJP" in rep.messages[0] and "min_length" in rep.messages[0]


def test_pdb_mmcif_bcif_round_trip(tmp_path):
    ca = ideal_helix(30) + 5.0
    for suffix in (".pdb", ".cif", ".bcif"):
        path = write_structure(tmp_path / f"h{suffix}", ca, "ACDEFGHIKLMNPQRSTVWYXACDEFGHIK")
        (rec,) = chain_records(path)
        assert np.allclose(rec.ca, ca, atol=1e-3), suffix
        assert rec.seq == "ACDEFGHIKLMNPQRSTVWYXACDEFGHIK"
    (gly,) = chain_records(write_structure(tmp_path / "g.pdb", ca))
    assert gly.seq == "G" * 30


def test_write_samples_trims_padding(tmp_path):
    x = torch.zeros(2, 40, 3)
    x[0, :30] = torch.as_tensor(ideal_helix(30), dtype=torch.float32)
    x[1, :20] = torch.as_tensor(ideal_helix(20), dtype=torch.float32)
    mask = torch.zeros(2, 40)
    mask[0, :30], mask[1, :20] = 1, 1
    from panflow import Samples

    paths = write_structures(Samples(x, cond={"residues": mask}), tmp_path)
    assert len(paths) == 4
    assert [len(chain_records(p)[0].ca) for p in paths] == [30, 30, 20, 20]


# -- bad input -----------------------------------------------------------------------------------------
def test_chain_breaks_split_or_refuse(tmp_path):
    ca = ideal_helix(40)
    ca[20:] += np.array([10.0, 0, 0])                      # a 10 Å jump between residues 20 and 21
    resids = list(range(1, 31)) + list(range(41, 51))      # and a numbering gap at residue 31
    f = write_pdb(tmp_path / "broken.pdb", ca, resids=resids)
    rep = ReadReport()
    recs = chain_records(f, min_length=5, report=rep)
    assert [len(r.ca) for r in recs] == [20, 10, 10] and rep.breaks == 2
    with pytest.raises(DataError, match=r"broken.pdb chain A: 2 chain break"):
        chain_records(f, breaks="refuse")


def test_missing_ca_is_counted_and_breaks_the_chain(tmp_path):
    ca = ideal_helix(40)
    lines = [pdb_line(i + 1, "CA" if i != 20 else "CB", "ALA", "A", i + 1, c) for i, c in enumerate(ca)]
    f = tmp_path / "noca.pdb"
    f.write_text("\n".join(lines + ["END"]) + "\n")
    rep = ReadReport()
    recs = chain_records(f, min_length=10, report=rep)
    assert rep.missing_ca == 1 and [len(r.ca) for r in recs] == [20, 19]
    assert any("without a Cα" in m and "noca.pdb" in m for m in rep.messages)


def test_no_protein_unknown_residue_and_absurd_coordinates(tmp_path):
    water = tmp_path / "water.pdb"
    water.write_text(pdb_line(1, "O", "HOH", "W", 1, (0, 0, 0), het=True) + "\nEND\n")
    rep = ReadReport()
    assert chain_records(water, report=rep) == [] and rep.no_protein == [str(water)]
    with pytest.raises(DataError, match="no usable protein chain"):
        load_pdb(DatasetOptions(path=str(water)))
    ca = ideal_helix(20)
    mixed = tmp_path / "mixed.pdb"
    lines = [pdb_line(i + 1, "CA", "ALA" if i != 5 else "MSE", "A", i + 1, c, het=i == 5) for i, c in enumerate(ca)]
    mixed.write_text("\n".join(lines + ["END"]) + "\n")
    rep = ReadReport()
    (rec,) = chain_records(mixed, report=rep)
    assert rec.seq[5] == "M" and rep.nonstandard_residues == 1
    bad = ca.copy()
    bad[3] = [9999.5, 0, 0]
    with pytest.raises(DataError, match=r"absurd.pdb chain A model 1: non-finite or absurd"):
        chain_records(write_pdb(tmp_path / "absurd.pdb", bad))
    with pytest.raises(DataError, match="not a structure file"):
        chain_records(tmp_path / "x.txt")
    with pytest.raises(DataError, match="chain.*Z.*not found"):
        chain_records(mixed, chains=["Z"])


def test_altloc_by_occupancy_and_insertion_codes(tmp_path):
    ca = ideal_helix(20)
    lines = []
    for i, c in enumerate(ca):
        if i == 4:
            lines += [pdb_line(len(lines) + 1, "CA", "ALA", "A", 5, c + 0.5, altloc="A", occ=0.3),
                      pdb_line(len(lines) + 2, "CA", "ALA", "A", 5, c, altloc="B", occ=0.7)]
        elif i == 10:
            lines.append(pdb_line(len(lines) + 1, "CA", "GLY", "A", 10, c, ins="A"))  # 10A after 10
        else:
            lines.append(pdb_line(len(lines) + 1, "CA", "ALA", "A", i + 1 if i < 10 else i, c))
    f = tmp_path / "alt.pdb"
    f.write_text("\n".join(lines + ["END"]) + "\n")
    (rec,) = chain_records(f)
    assert len(rec.ca) == 20 and np.allclose(rec.ca[4], ca[4], atol=1e-3)
    assert rec.res_ids[9:12] == ["10", "10A", "11"] and rec.seq[10] == "G"


def test_data_paths_folder_and_list_file(tmp_path):
    for k in range(3):
        write_structure(tmp_path / f"p{k}.pdb", ideal_helix(30 + k))
    (tmp_path / "list.txt").write_text("p0.pdb\np2.pdb\n")
    assert len(expand_paths(tmp_path)) == 3 and len(expand_paths(tmp_path / "list.txt")) == 2
    with pytest.raises(DataError, match="missing"):
        (tmp_path / "bad.txt").write_text("nope.pdb\n")
        expand_paths(tmp_path / "bad.txt")


def test_split_is_by_protein_and_ensemble_by_model():
    b = load_pdb(DatasetOptions(val_fraction=0.2, options={"max_proteins": 10, "max_len": 64}))
    train = {n.split(":")[0] for n in b.meta["train_names"]}
    val = {n.split(":")[0] for n in b.meta["val_names"]}
    assert train and val and not train & val and len(b.meta["val_proteins"]) == 2
    assert b.train.x.shape[1:] == (64, 3) and bool((b.train.x.abs().sum(-1)[b.train.mask == 0] == 0).all())
    real = b.train.mask[0] > 0
    assert torch.allclose(b.train.x[0][real].mean(0), torch.zeros(3), atol=1e-4)
    e = load_ensemble(DatasetOptions())
    assert len(e.train) == 12 and len(e.val) == 12 and e.train.x.shape[1] == 28


# -- metrics on closed-form cases --------------------------------------------------------------------
def test_ideal_helix_geometry_and_sse():
    h = ideal_helix(40)
    assert M.bond_validity([h]) == 1.0 and M.clash_rates([h])["clash_rate"] == 0.0
    sse = M.sse_fractions([h])
    assert sse["helix"] >= 0.85 and sse["strand"] == 0.0
    assert M.motif_rmsd(h[:10] @ random_rotations(1)[0].numpy().T + 3.0, h[:10]) < 1e-4


def test_random_walk_rg_follows_ideal_chain_scaling():
    for n in (50, 200):
        rg2 = np.mean([M.radius_of_gyration(w) ** 2 for w in random_walks([n] * 300, seed=n)])
        assert rg2 == pytest.approx(3.8 ** 2 * (n * n - 1) / (6 * n), rel=0.1)
        assert M.bond_validity(random_walks([n], seed=1)) == 1.0
    assert M.rg_law(100) == pytest.approx(2.2 * 100 ** 0.38)


def test_ensemble_metrics_identity_and_clash_counting():
    rng = np.random.default_rng(0)
    base = ideal_helix(20)
    ens = [base + rng.normal(size=base.shape) * np.linspace(0.1, 2.0, 20)[:, None] for _ in range(30)]
    other = [base + rng.normal(size=base.shape) * np.linspace(0.1, 2.0, 20)[:, None] for _ in range(30)]
    assert M.rmsf_correlation(ens, other) > 0.9
    assert M.pair_distance_w1(ens, ens) == pytest.approx(0.0, abs=1e-9)
    assert M.pair_distance_w1(ens, [e * 1.5 for e in ens]) > 1.0
    squashed = base.copy()
    squashed[10] = squashed[0] + [0.5, 0, 0]
    assert M.clash_rates([squashed])["clash_rate"] > 0


def test_tm_score_of_a_structure_with_itself_is_one():
    f = embedded.data_dir() / "dssp" / "2cviA.pdb.gz"
    (rec,) = chain_records(f)
    moved = rec.ca @ random_rotations(1)[0].numpy().T + 7.0
    assert M.tm_pair(rec.ca, moved) == pytest.approx(1.0, abs=1e-3)


def test_tm_score_falls_back_to_index_alignment_when_biotite_finds_no_anchor():
    line = np.stack([np.arange(40) * 3.8, np.zeros(40), np.zeros(40)], 1)
    blob = np.random.default_rng(0).normal(size=(30, 3)) * 8   # biotite: "No anchors found"
    before = M.TM_FALLBACKS[0]
    tm = M.tm_pair(line, blob)
    assert M.TM_FALLBACKS[0] == before + 1 and 0.0 <= tm < 0.2


# -- model pieces --------------------------------------------------------------------------------------
def test_rotations_are_proper_and_motif_segments_contiguous():
    r = random_rotations(64, torch.Generator().manual_seed(0))
    eye = torch.eye(3, dtype=r.dtype).expand_as(r)
    assert torch.allclose(r @ r.transpose(1, 2), eye, atol=1e-10) and torch.allclose(torch.det(r), torch.ones(64, dtype=r.dtype))
    known = MotifKnown(p_none=0.0, max_segments=2, min_len=3, max_len=6).draw(200, (50,), torch.Generator().manual_seed(0), "cpu")
    starts = (known[:, 1:] & ~known[:, :-1]).sum(1) + known[:, 0]
    assert bool((starts >= 1).all() and (starts <= 2).all())
    assert bool((known.sum(1) >= 3).all() and (known.sum(1) <= 12).all())


def test_rotating_flow_is_the_inner_loss_on_rotated_data_and_aux_is_finite():
    from panflow import FlowObjective, Samples
    from panflow_protein.objective import RotatingFlow

    inner = FlowObjective(time_shape=(12,))
    x = torch.as_tensor(ideal_helix(12) / 10, dtype=torch.float32).expand(3, 12, 3).contiguous()
    batch = Samples(x, mask=torch.ones(3, 12))
    model = lambda xt, t, cond: xt * 0.5
    g = torch.Generator().manual_seed(0)
    rf = RotatingFlow(inner)
    rand = rf.draw(3, x, g)
    rot = rand["rot"]
    plain = {k: v for k, v in rand.items() if k != "rot"}
    want = inner.loss(model, Samples(torch.einsum("bij,blj->bli", rot, x), mask=batch.mask), plain)
    assert torch.allclose(rf.loss(model, batch, rand), want)
    aux = RotatingFlow(inner, aux_weight=10.0, aux_t=0.0).loss(model, batch, rand)
    assert torch.isfinite(aux) and aux > want
    assert RotatingFlow.from_json(RotatingFlow(inner, 3.0).to_json()).aux_weight == 3.0
    still = RotatingFlow(inner, rotate=False)                  # an ensemble's frame: the inner loss as is
    rand = still.draw(3, x, g)
    assert "rot" not in rand and torch.allclose(still.loss(model, batch, rand), inner.loss(model, batch, rand))
    assert RotatingFlow.from_json(still.to_json()).rotate is False


def test_conformance():
    assert_plugin_conforms("protein")


@pytest.mark.slow
def test_smoke_train_sample_and_motif_held_exactly(tmp_path):
    cfg = build_config("protein", "smoke", overrides={"train.progress": False, "data.options": {
        "max_proteins": 8, "max_len": 96, "sequence": True}})
    run = load_run(train(cfg, tmp_path / "run"))
    assert [c.name for c in run.spec.conditions] == ["residues", "seq"] and run.spec.time_shape == (96,)
    motif = ideal_helix(8)
    pos = np.arange(10, 18)
    out, setup = scaffold(run, motif, pos, 60, 2, run.options(nfe=2))
    for s in out:
        assert s.shape == (60, 3)
        assert np.allclose(s[pos], motif - motif.mean(0), atol=1e-5)
        assert M.motif_rmsd(s[pos], motif) < 1e-3
    assert math.isfinite(setup["wall_s"])


# -- internal coordinates ------------------------------------------------------------------------------
def test_internal_coordinates_of_an_ideal_helix_and_exact_round_trip():
    from panflow_protein.internal import decode_internal, encode_internal, internal_from_xyz

    h = torch.tensor(ideal_helix(30))[None]
    d, theta, tau = internal_from_xyz(h)
    assert torch.allclose(d[0, 1:], torch.full((29,), float(np.linalg.norm(h[0, 1] - h[0, 0])), dtype=d.dtype), atol=1e-9)
    # a right-handed α-helix: virtual bond angle ≈ 91°, torsion ≈ +50° (IUPAC sign), the same at every residue
    assert abs(math.degrees(float(theta[0, 5])) - 91) < 4 and 40 < math.degrees(float(tau[0, 5])) < 60
    assert torch.allclose(tau[0, 3:], tau[0, 3].expand(27), atol=1e-9)
    mirror = h * torch.tensor([1.0, 1.0, -1.0])  # the left-handed helix has the opposite torsion
    assert torch.allclose(internal_from_xyz(mirror)[2][0, 3:], -tau[0, 3:], atol=1e-9)
    z = encode_internal(h)
    assert z.shape == (1, 30, 5) and torch.all(z[0, :2, :2] == 0) and torch.all(z[0, :3, 2:4] == 0)
    back = decode_internal(z)[0].numpy()
    assert M.motif_rmsd(back, h[0].numpy()) < 1e-4  # the same trace up to a rigid motion (float32 superposition)


def test_internal_round_trip_on_real_chains_and_rigid_invariance():
    from panflow_protein.internal import decode_internal, encode_internal

    b = load_pdb(DatasetOptions(None, options={"max_proteins": 6, "max_len": 64}))
    x = b.train.x[:6].double()
    n = b.train.mask[:6].sum(1).long()
    z = encode_internal(x)
    back = decode_internal(z)
    for i in range(6):
        assert M.motif_rmsd(back[i, :n[i]].numpy(), x[i, :n[i]].numpy()) < 1e-4  # metrics superpose in float32
    moved = x @ random_rotations(1, torch.Generator().manual_seed(3))[0].double().T + 7.0
    assert torch.allclose(encode_internal(moved), z, atol=1e-9)  # nothing to augment: invariant by construction


def test_internal_encoder_trains_and_samples_and_bad_options_are_named(tmp_path):
    from panflow import ConfigError, UnknownNameError
    from panflow_protein.encoder import make_encoder

    with pytest.raises(UnknownNameError, match="internal"):
        make_encoder({"coords": "internl"})
    with pytest.raises(ConfigError, match="'cartesian' only"):
        make_encoder({"coords": "internal", "scale": 5})
    cfg = build_config("protein", "smoke", overrides={"train.progress": False, "encoder.options": {"coords": "internal"},
                                                       "flow.objective": "flow", "flow.known": "none"})
    run = load_run(train(cfg, tmp_path / "run"))
    assert run.spec.shape[1] == 5 and run.contract["encoder"]["type"] == "internal"
    gen, _ = run.generate(2, run.options(nfe=2), cond={"residues": torch.ones(2, run.spec.shape[0])})
    assert gen.x.shape == (2, run.spec.shape[0], 3) and torch.isfinite(gen.x).all()
    # the command line samples it under the rg potential and records it; bad names and options are named
    import json

    from panflow.cli import main

    mask = np.zeros((1, run.spec.shape[0]), np.float32)
    mask[0, :40] = 1
    np.savez(tmp_path / "len40.npz", residues=mask)
    base = ["sample", str(tmp_path / "run"), "--n", "2", "--nfe", "4", "--cond", str(tmp_path / "len40.npz")]
    assert main([*base, "--out", str(tmp_path / "s"), "--potential", "rg:weight=1,t_max=0.98,a=6"]) == 0
    used = json.loads((tmp_path / "s" / "sampling.json").read_text())["potentials"]
    assert used == {"rg": {"weight": 1.0, "t_max": 0.98, "a": 6.0}}
    assert main([*base, "--out", str(tmp_path / "s2"), "--potential", "rgg"]) == 2
    assert main([*base, "--out", str(tmp_path / "s3"), "--potential", "rg:wieght=1"]) == 2
    assert main([*base, "--out", str(tmp_path / "s4"), "--potential", "rg:a=6", "--potential", "rg:sd=0.1"]) == 2
    from panflow.cli import _potential_arg

    assert _potential_arg("bond:t_max=1,length=3.8,flag=true,tag=x") == (
        "bond", {"t_max": 1, "length": 3.8, "flag": True, "tag": "x"})


def test_benchmark_smoke_internal_backbones_cartesian_motifs(tmp_path):
    import json

    from panflow.bench import run_benchmarks

    paths = run_benchmarks(["protein"], "smoke", tmp_path, log=lambda m: None)
    result = json.loads(paths["protein"].read_text())
    roles = [r["role"] for r in result["rows"]]
    assert {"floor", "baseline", "model", "model · no size potential", "model · motif", "model · ensemble"} <= set(roles)
    rows = {r["role"]: r for r in result["rows"]}
    pot = rows["model"]["setup"]["potentials"]["rg"]  # the target law fitted to the training windows
    assert pot["weight"] == 1.0 and pot["t_max"] == 0.98 and pot["a"] > 0 and pot["sd"] > 0
    assert rows["model · no size potential"]["setup"]["potentials"] == {}
    assert all("lr_contacts" in rows[k]["metrics"] for k in ("floor", "baseline", "model"))
    training = result["training"]
    assert training["backbones"]["coords"] == "internal" and training["ensemble"]["coords"] == "cartesian"
    assert training["motif"]["coords"] == "cartesian"
    motif = next(r for r in result["rows"] if r["role"] == "model · motif")["metrics"]
    bonded = rows["model · motif + bond potential"]
    assert bonded["metrics"]["motif_rmsd"] < 1e-3 and bonded["setup"]["potentials"] == {"bond": {"weight": 1.0, "t_max": 1.0}}
    assert motif["motif_rmsd"] < 1e-3  # held at their positions by the Cartesian model
    from panflow import get_registry

    bench = next(b for b in get_registry().all("benchmark") if b.name == "protein")
    assert bench.headline == ("sse_max_abs_err",) and not bench.headline_higher  # bond validity: the walk's by construction
    assert all("sse_max_abs_err" in r["metrics"] for r in result["rows"] if r["role"] in ("floor", "baseline", "model"))


def test_internal_run_refuses_motif_scaffolding(tmp_path):
    from panflow import ConfigError

    cfg = build_config("protein", "smoke", overrides={"train.progress": False, "encoder.options": {"coords": "internal"},
                                                       "flow.objective": "flow", "flow.known": "none"})
    run = load_run(train(cfg, tmp_path / "run"))
    with pytest.raises(ConfigError, match="Cartesian run"):
        scaffold(run, ideal_helix(8), np.arange(10, 18), 40, 1, run.options(nfe=2))


def test_sse_of_a_diverged_chain_is_coil_without_running_out_of_memory():
    h = ideal_helix(30)
    wild = h * 1e7  # what a diverged model emitted in the ablation: P-SEA asked for 161 TiB
    broken = h.copy()
    broken[4] = np.nan
    before = M.SSE_SKIPPED[0]
    sse = M.sse_fractions([wild, broken])
    assert sse == {"helix": 0.0, "strand": 0.0, "coil": 1.0} and M.SSE_SKIPPED[0] == before + 2
    assert M.sse_fractions([h])["helix"] >= 0.85  # a real chain still goes through P-SEA


def test_angle_flow_adds_a_distance_loss_on_the_rebuilt_trace():
    from panflow import FlowObjective, Samples
    from panflow_protein.angle_objective import AngleFlow
    from panflow_protein.internal import encode_internal

    z = encode_internal(torch.tensor(ideal_helix(24))[None].repeat(4, 1, 1).float())
    inner = FlowObjective("linear", "velocity", "uniform")
    g = torch.Generator().manual_seed(0)
    rand = inner.draw(4, z, g)
    rand["t"] = torch.tensor([0.9, 0.95, 0.2, 0.99])  # three samples near the data end get the distance loss

    class Const(torch.nn.Module):
        def __init__(self, v):
            super().__init__()
            self.v = torch.nn.Parameter(v)

        def forward(self, x, t, cond):
            return self.v.expand_as(x)

    exact = Const((z[0] - rand["x0"][0]).clone())  # the true velocity of sample 0's path (all samples share z)
    batch = Samples(z)
    plain = AngleFlow(inner, aux_weight=0.0).loss(exact, batch, dict(rand))
    assert float(plain) == pytest.approx(float(inner.loss(exact, batch, dict(rand))), rel=1e-6)
    wrong = Const(torch.zeros_like(z[0]))
    with_aux = AngleFlow(inner, aux_weight=1.0).loss(wrong, batch, dict(rand))
    without = AngleFlow(inner, aux_weight=0.0).loss(wrong, batch, dict(rand))
    assert float(with_aux) > float(without) > 0
    with_aux.backward()
    assert torch.isfinite(wrong.v.grad).all() and wrong.v.grad.abs().sum() > 0
    back = AngleFlow.from_json(AngleFlow(inner, 2.0, 0.7).to_json())
    assert (back.aux_weight, back.aux_t, back.kind) == (2.0, 0.7, "angleflow")


def test_angle_flow_rg_loss_sees_only_the_size():
    from panflow import FlowObjective, UnknownNameError
    from panflow_protein.angle_objective import AngleFlow, radius_of_gyration, rg_loss

    x = torch.tensor(ideal_helix(24)).float()[None] / 10
    m = torch.ones(1, 24)
    want = np.sqrt(((ideal_helix(24) / 10 - (ideal_helix(24) / 10).mean(0)) ** 2).sum(-1).mean())
    assert float(radius_of_gyration(x, m)) == pytest.approx(want, rel=1e-5)
    half = torch.cat([torch.ones(1, 12), torch.zeros(1, 12)], 1)   # padding does not count
    assert float(radius_of_gyration(x, half)) == pytest.approx(float(radius_of_gyration(x[:, :12], m[:, :12])), rel=1e-6)
    rot = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(1)))[0]
    assert float(rg_loss(x @ rot.T + 0.3, x, m)) == pytest.approx(0.0, abs=1e-10)  # rigid motions are free
    assert float(rg_loss(1.5 * x, x, m)) == pytest.approx(float(0.5 * radius_of_gyration(x, m)) ** 2, rel=1e-5)
    assert AngleFlow.from_json(AngleFlow(FlowObjective(), aux="rg").to_json()).aux == "rg"
    with pytest.raises(UnknownNameError, match="Did you mean 'rg'"):
        AngleFlow(FlowObjective(), aux="rgg")


@pytest.mark.parametrize("schedule", ["vp-linear", "vp-sigmoid"])
def test_rotating_flow_aux_loss_is_finite_on_vp_paths(schedule):
    """The ablation's VP runs died with NaN at step 0: motif residues sit at t = 1, where the VP
    velocity target is infinite, and their zero weight made inf · 0 = NaN."""
    from panflow import FlowObjective, Samples
    from panflow_protein.objective import RotatingFlow

    x = torch.tensor(ideal_helix(16))[None].repeat(8, 1, 1).float() / 10
    obj = RotatingFlow(FlowObjective(schedule, "velocity", "uniform", time_shape=(16,)), aux_weight=10.0)
    rand = obj.draw(8, x, torch.Generator().manual_seed(0))
    rand["t"] = torch.tensor([1e-4, 2e-4, 0.3, 0.6, 0.9, 0.99, 1 - 1e-4, 1e-4])  # the range draw() keeps VP in
    known = torch.zeros(8, 16, dtype=torch.bool)
    known[:, 4:8] = True  # motif residues: presented clean at t = 1
    model = torch.nn.Linear(3, 3)
    loss = obj.loss(lambda z, t, c: model(z), Samples(x, known=known), rand)
    assert torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(model.weight.grad).all()


def test_rg_potential_steps_internal_and_cartesian_chains_to_the_target_size():
    from panflow import ConfigError
    from panflow.potentials import gauss_newton_step
    from panflow_protein.angle_objective import radius_of_gyration
    from panflow_protein.internal import encode_internal
    from panflow_protein.potentials import RgPotential

    x = torch.stack([torch.tensor(w) for w in random_walks([40, 40], seed=3)]).double()  # [2, 40, 3] Å
    mask = torch.cat([torch.ones(2, 30), torch.zeros(2, 10)], 1)  # 30 real residues, 10 padding
    rg = radius_of_gyration(x, mask.double())
    target = 0.8 * float(rg.mean())
    residual = RgPotential(a=target, b=0.0).bind({"residues": mask}, 2, None)  # Rg* = a · N^0 = target
    for z in (encode_internal(x), x / 10.0):  # internal coordinates (through NeRF) and Cartesian nm
        r0 = residual(z)
        assert torch.allclose(r0, torch.log(rg / target))
        step = gauss_newton_step(residual, z, 1.0)
        assert (residual(z + step).abs() < 0.3 * r0.abs()).all()  # one step removes most of the size error
        assert float(step[:, 30:].abs().max()) == 0.0  # padding is not part of the chain's size
    with pytest.raises(ConfigError, match="protein chains"):
        residual(torch.zeros(2, 40, 4))
    # an all-zero residues row means "all real" to the backbone, and so to the potential
    empty = RgPotential(a=target, b=0.0).bind({"residues": torch.zeros(2, 40)}, 2, None)
    assert torch.allclose(empty(x / 10.0), torch.log(radius_of_gyration(x, torch.ones(2, 40, dtype=torch.float64)) / target))
    with pytest.raises(ConfigError, match="a > 0"):
        RgPotential(a=-1.0)


def test_size_law_recovers_a_power_law_and_its_spread():
    from panflow_protein.potentials import size_law

    chains = []
    for k, n in enumerate((20, 30, 45, 64, 90)):
        w = random_walks([n], seed=k)[0]
        w = w - w.mean(0)
        chains.append(w * (3.0 * n ** 0.4) / M.radius_of_gyration(w))
    law = size_law(chains)
    assert law["a"] == pytest.approx(3.0, rel=1e-6) and law["b"] == pytest.approx(0.4, abs=1e-6) and law["sd"] < 1e-6
    chains[0] = chains[0] * 1.2
    assert size_law(chains)["sd"] > 0.01


def test_bond_potential_steps_consecutive_distances_to_3_8_angstrom():
    from panflow.potentials import gauss_newton_step
    from panflow_protein.internal import encode_internal
    from panflow_protein.potentials import BondPotential

    walk = torch.tensor(random_walks([30], seed=5)[0]).double()[None]
    noisy = walk + 0.15 * torch.randn(walk.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    residual = BondPotential().bind({"residues": torch.ones(1, 30)}, 1, None)
    for z in (noisy / 10.0, encode_internal(noisy)):  # Cartesian nm, internal coordinates (bond channel)
        r0 = residual(z)
        assert 0.1 < float(r0) < 0.5  # RMS bond error in Å
        z1 = z
        for _ in range(3):
            z1 = z1 + gauss_newton_step(residual, z1, 1.0)
        assert float(residual(z1)) < 0.1 * float(r0)  # well inside the 0.1 Å bond tolerance
    assert float(residual(walk / 10.0)) < 1e-5  # an ideal chain is already satisfied
