"""Registers the protein domain: Cα-trace datasets (biotite readers), the residue transformer, the
rotation-augmented flow objective, the motif known-part sampler, metrics and the benchmark.

biotite and MDAnalysisTests are imported only when a component is used.
"""

from __future__ import annotations

import panflow
from panflow import Backbone, Benchmark, ConditionSpec, Dataset, DataSpec, Domain, Metric, Objective, lazy

from . import __version__


def _spec(bundle) -> DataSpec:
    length = int(bundle.train.x.shape[1])
    conds = [ConditionSpec("residues", "tensor", (length,), normalisation="1 = real residue, 0 = padding; null = all real")]
    if "seq" in bundle.train.cond:
        conds.append(ConditionSpec("seq", "tensor", (length, int(bundle.train.cond["seq"].shape[2])), dropout=0.2,
                                   normalisation="one-hot over ACDEFGHIKLMNPQRSTVWY + X"))
    return DataSpec("continuous", (length, 3), conditions=tuple(conds), time_shape=(length,))


def _metric(name):
    def fn(real, gen, seed: int = 0) -> dict:
        from .io import sample_lengths
        from .metrics import geometry, sse_fractions, traces

        r, g = traces(real.x, sample_lengths(real)), traces(gen.x, sample_lengths(gen))
        if name == "geometry":
            return {k: v for k, v in geometry(g, r).items() if k not in ("helix", "strand", "coil")}
        a, b = sse_fractions(r), sse_fractions(g)
        return {f"{k}_abs_err": abs(a[k] - b[k]) for k in a}
    return fn


AUX_WEIGHT = 10.0  # weight of the auxiliary local-distance loss near the data end (objective.py)
# internal coordinates (encoder.py): plain flow matching (nothing to rotate), no motif residues to hold
INTERNAL = {"encoder.options": {"coords": "internal"}, "flow.objective": "flow", "flow.known": "none"}
# sample.solver midpoint: a velocity model's output at t = 1 itself is poorly determined (the target x1 − x0 has
# the noise's full variance there), and heun / rk4 evaluate it on their last step: on the Cartesian ensemble
# model that put Cα bonds 0.3 Å off (bond validity 0.34 heun, 0.49 rk4, 0.99 midpoint or euler at NFE 64) —
# EDM's sampler skips the correction at the data end for the same reason (Karras et al. 2022, Alg. 1)
TRAIN_SMALL = {"train.steps": 2500, "train.batch_size": 16, "train.lr": 1e-3, "train.warmup_steps": 100,
               "train.lr_schedule": "cosine", "train.min_lr_ratio": 0.1, "train.ema_decay": 0.999, "train.ema_warmup": True,
               "train.grad_clip": 1.0, "train.log_every": 100, "data.val_fraction": 0.2,
               "data.options": {"max_len": 64}, "sample.solver": "midpoint", "sample.nfe": 64}
PRESETS = {
    "smoke": {"train.steps": 3, "train.batch_size": 4, "train.log_every": 1, "data.val_fraction": 0.5,
              "data.options": {"max_proteins": 8, "max_len": 96}, "sample.nfe": 2},
    "quick": {**TRAIN_SMALL, "train.steps": 500, "train.batch_size": 8, "train.warmup_steps": 50, "train.ema_decay": 0.99,
              "train.log_every": 25, "sample.nfe": 16},
    "small": TRAIN_SMALL,
    "full": {**TRAIN_SMALL, "train.steps": 100_000, "train.batch_size": 64, "train.lr": 3e-4, "train.warmup_steps": 1000,
             "train.ema_decay": 0.9999, "train.amp": "auto", "train.log_every": 1000, "train.checkpoint_every": 10_000,
             "data.options": {"max_len": 176}, "sample.nfe": 128},
}
BACKBONE_PRESETS = {
    "smoke": {"ca-transformer": {"dim": 32, "depth": 1, "heads": 2, "shells": 4}},
    "quick": {"ca-transformer": {"dim": 64, "depth": 2, "heads": 4}},
    "small": {"ca-transformer": {"dim": 96, "depth": 3, "heads": 4}},
    "full": {"ca-transformer": {"dim": 384, "depth": 12, "heads": 8}},
}


class ProteinPlugin:
    PANFLOW_HOOK_API = 1
    REQUIRES = {"biotite": "protein", "MDAnalysisTests": "protein"}
    __version__ = __version__

    @panflow.hookimpl
    def panflow_register(self, registry) -> None:
        from .known import MotifKnown
        from .potentials import BondPotential, RgPotential

        if panflow.KNOWN_SAMPLERS.get("motif") is not MotifKnown:
            panflow.register_known_sampler(MotifKnown)
        panflow.register_potential(RgPotential)
        panflow.register_potential(BondPotential)
        registry.add_objective(Objective(
            "rotflow", lambda spec, cfg, dom: lazy("panflow_protein.objective:RotatingFlow")(
                registry.objective("flow").build(spec, cfg, dom), **{"aux_weight": AUX_WEIGHT, **cfg.flow.objective_options}),
            lambda d, spec=None: lazy("panflow_protein.objective:RotatingFlow").resolve().from_json(d, spec),
            "flow matching with a uniformly random rotation of each training structure", affine_path=True))
        registry.add_objective(Objective(
            "angleflow", lambda spec, cfg, dom: lazy("panflow_protein.angle_objective:AngleFlow")(
                registry.objective("flow").build(spec, cfg, dom), **cfg.flow.objective_options),
            lambda d, spec=None: lazy("panflow_protein.angle_objective:AngleFlow").resolve().from_json(d, spec),
            "flow matching in internal coordinates + a distance loss on the NeRF-rebuilt trace", affine_path=True))
        registry.add_domain(Domain(
            name="protein", description="protein Cα backbones, ensembles and motif scaffolds (PDB / mmCIF / BinaryCIF)",
            default_dataset="pdb", default_backbone="ca-transformer", data_spec=_spec,
            make_encoder=lazy("panflow_protein.encoder:make_encoder"),
            load_encoder=lazy("panflow_protein.encoder:load_encoder"),
            write_samples=lazy("panflow_protein.io:write_structures"), objective="rotflow",
            evaluate=lazy("panflow_protein.evaluate:evaluate"), presets=PRESETS, backbone_presets=BACKBONE_PRESETS,
            metrics=("geometry", "sse"), known="motif", known_options={"p_none": 0.5, "span": 64}))
        registry.add_dataset(Dataset("pdb", "protein", lazy("panflow_protein.data:load_pdb"),
                                     "protein chains split by protein: 49 embedded DSSP test chains "
                                     "(MDAnalysisTests) or your PDB/mmCIF/BinaryCIF files (--data)"))
        registry.add_dataset(Dataset("ensemble", "protein", lazy("panflow_protein.data:load_ensemble"),
                                     "models of one multi-model file (default: NMR ensemble 2JUY), odd train / even held out"))
        registry.add_backbone(Backbone("ca-transformer", lazy("panflow_protein.backbone:build"), ("continuous",),
                                       lazy("panflow_protein.backbone:fits"),
                                       "adaLN transformer over residues: local offsets, distance shells, rotary positions",
                                       consumes=lazy("panflow_protein.backbone:consumes"), per_element_time=True))
        registry.add_metric(Metric("geometry", "protein", _metric("geometry"),
                                   description="bond validity, clashes, Rg vs law and vs data"))
        registry.add_metric(Metric("sse", "protein", _metric("sse"),
                                   description="helix/strand/coil fraction errors (biotite P-SEA)"))
        registry.add_benchmark(Benchmark("protein", "protein", lazy("panflow_protein.benchmark:run_benchmark"),
                                         "backbones, motif scaffolds and an NMR ensemble vs random walk and real floors",
                                         headline=("sse_max_abs_err",), model_overrides=INTERNAL,
                                         presets=("smoke", "quick", "small", "full"),
                                         previews=lazy("panflow_protein.previews:previews")))


plugin = ProteinPlugin()
