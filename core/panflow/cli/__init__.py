"""The ``panflow`` command line: plugins, train, sample, eval, encode, reflow, bench."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .._version import __version__
from ..errors import ConfigError, PanflowError, UnknownNameError
from ..presets import PRESETS as PRESET_NAMES


def _plugins(args) -> int:
    from ..plugins import load_plugins

    mgr = load_plugins()
    infos = sorted(mgr.plugins.values(), key=lambda i: i.name)
    if args.json:
        print(json.dumps([i.to_json() for i in infos], indent=2))
        return 0
    rows = [("plugin", "version", "status", "contributes", "enable / message")]
    for i in infos:
        contrib = "; ".join(f"{k}: {', '.join(v)}" for k, v in i.contributes.items() if v) or "-"
        msg = i.enable if i.status == "unavailable" else (i.message if i.status == "error" else "")
        rows.append((i.name, i.version or "-", i.status, contrib, msg))
    widths = [max(len(r[c]) for r in rows) for c in range(4)]
    for r in rows:
        print("  ".join(r[c].ljust(widths[c]) for c in range(4)) + "  " + r[4])
    if not infos:
        print("(no plugins installed in the 'panflow.plugins' entry-point group)")
    return 0


def _label_arg(value: str) -> int | str:
    """``--label``: a class id, or ``null`` for none."""
    if value == "null":
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a class id or 'null', got {value!r}") from None


def _potential_arg(value: str) -> tuple[str, dict]:
    """``--potential NAME[:key=value,...]``: a registered potential and its options (values read as
    TOML scalars: 3 an int, 0.5 a float, true a bool, anything else a string)."""
    import tomllib

    name, _, rest = value.partition(":")
    opts: dict = {}
    for item in filter(None, rest.split(",")):
        key, eq, v = item.partition("=")
        if not eq or not key.strip():
            raise argparse.ArgumentTypeError(f"expected NAME[:key=value,...], got {value!r}")
        try:
            opts[key.strip()] = tomllib.loads(f"v = {v.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            opts[key.strip()] = v.strip()
    if not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME[:key=value,...], got {value!r}")
    return name.strip(), opts


def _potentials(given: list | None) -> dict | None:
    """``--potential`` arguments as ``SampleOptions.potentials``; a name given twice is an error."""
    if not given:
        return None
    names = [n for n, _ in given]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"--potential {twice[0]} given twice: put all its options in one argument")
    return dict(given)


def _positive(**values: int | None) -> None:
    for name, v in values.items():
        if v is not None and v < 1:
            raise ConfigError(f"--{name} must be ≥ 1, got {v}")


def stale_outputs(out: Path) -> list[Path]:
    """Files of an earlier ``panflow sample`` in ``out`` (to replace); refuses a foreign non-empty dir."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a directory")
    if not out.exists() or not any(out.iterdir()):
        return []
    record = out / "sampling.json"
    try:
        names = json.loads(record.read_text()).get("files") if record.exists() else None
    except (json.JSONDecodeError, AttributeError):
        names = None
    if not isinstance(names, list):
        raise ConfigError(f"--out {out} is not empty and holds no file list of an earlier panflow sample; "
                          "choose an empty or new directory")
    return [out / n for n in names if isinstance(n, str) and Path(n).name == n] + [record]


def _unavailable_hint(exc: PanflowError) -> str:
    """For an unknown domain whose plugin is installed but not loaded: say why and how to fix it."""
    if not (isinstance(exc, UnknownNameError) and exc.kind == "domain"):
        return ""
    from ..plugins import load_plugins

    info = load_plugins().plugins.get(exc.name)
    if info is None or info.status == "loaded":
        return ""
    how = info.enable if info.status == "unavailable" else info.message
    return f"domain '{exc.name}' is installed but its plugin is {info.status}: {how}"


def _train(args) -> int:
    from ..run import build_config, train

    overrides = list(args.set or [])
    if args.device:
        overrides.append(f"train.device={args.device}")
    if args.latent:
        overrides.insert(0, "encoder.options.latent=true")
    preset = args.preset or "small"
    cfg = build_config(args.domain, preset, args.config, overrides, args.dataset, args.data, args.backbone)
    out = Path(args.out or f"runs/{args.domain}-{cfg.data.dataset}-{preset}")
    if args.resume and out.exists():  # continue the saved config; only explicit flags are changes
        from ..resume import resumed_config

        explicit = {"domain": args.domain, "preset": args.preset, "data.dataset": args.dataset,
                    "data.path": args.data, "model.backbone": args.backbone}
        cfg = resumed_config(out, args.config, explicit, overrides)
    run_dir = train(cfg, out, resume=args.resume)
    print(f"trained {cfg.train.steps} steps -> {run_dir}")
    return 0


def _load_cond(path: str, n: int | None) -> tuple[dict, object, object, int | None]:
    """Arrays of a ``--cond`` NPZ: condition tensors by name, plus optional ``known``/``x_known``.

    Arrays with one row are repeated for every sample; otherwise they fix the number of samples.
    """
    import numpy as np
    import torch

    from ..errors import DataError

    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except FileNotFoundError as exc:
        raise DataError(f"--cond file {path} does not exist") from exc
    except (ValueError, OSError) as exc:
        raise DataError(f"--cond file {path} is not a readable NPZ of numeric arrays ({exc})") from exc
    rows = {k: v.shape[0] for k, v in arrays.items() if v.ndim > 0 and v.shape[0] != 1}
    if len(set(rows.values())) > 1:
        raise DataError(f"--cond file {path}: arrays disagree on the number of samples: {rows}")
    m = next(iter(rows.values()), None)
    if m is not None and n is not None and m != n:
        raise DataError(f"--cond file {path} holds {m} samples but --n is {n}")
    total = n or m
    if total is None:
        total = 64

    def tensor(v):
        t = torch.from_numpy(np.ascontiguousarray(v))
        return t.expand(total, *t.shape[1:]).clone() if t.shape[0] == 1 else t

    known = tensor(arrays.pop("known")).bool() if "known" in arrays else None
    x_known = tensor(arrays.pop("x_known")).float() if "x_known" in arrays else None
    if (known is None) != (x_known is None):
        raise DataError(f"--cond file {path}: 'known' and 'x_known' must be given together")
    cond = {k: (tensor(v) if v.dtype.kind in "iu" else tensor(v).float()) for k, v in arrays.items()}
    return cond, known, x_known, total


def _prefix(run, text: str, n: int):
    """``known``/``x_known`` holding the domain's encoding of ``text`` at the start of every sample."""
    import torch

    if run.domain.encode_prompt is None:
        raise ConfigError(f"domain '{run.domain.name}' takes no --prefix (it has no encode_prompt)")
    ids = list(run.domain.encode_prompt(text, run.contract.get("dataset", {})))
    length = run.spec.shape[0]
    if not 0 < len(ids) < length:
        raise ConfigError(f"--prefix gives {len(ids)} tokens; it must give 1 to {length - 1} (the sequence length "
                          f"is {length})")
    known = torch.zeros(n, *run.spec.shape, dtype=torch.bool)
    known[:, :len(ids)] = True
    x_known = torch.zeros(n, *run.spec.shape, dtype=torch.long)
    x_known[:, :len(ids)] = torch.tensor(ids, dtype=torch.long)
    return known, x_known


def _sample(args) -> int:
    import torch

    from ..run import load_run

    _positive(n=args.n, nfe=args.nfe)
    if args.noise_scale is not None and not args.noise_scale >= 0:
        raise ConfigError(f"--noise-scale must be ≥ 0, got {args.noise_scale}")
    if args.guidance is not None and not args.guidance >= 0:
        raise ConfigError(f"--guidance must be ≥ 0, got {args.guidance}")
    out = Path(args.out or Path(args.run_dir) / "samples")
    stale = stale_outputs(out)  # checked before the (slow) sampling; removed just before writing
    run = load_run(args.run_dir, device=args.device or "auto")
    k = run.spec.num_classes
    if not run.spec.conditions and (args.label is not None or args.guidance not in (None, 1.0) or args.cond):
        raise ConfigError(f"run {args.run_dir} is unconditional: --label, --guidance and --cond need a conditional model")
    if args.label == "null" and not k:
        raise ConfigError(f"--label null needs a class-conditional model; run {args.run_dir} has no label")
    if args.label not in (None, "null") and not 0 <= args.label < k:
        raise ConfigError(f"--label {args.label} is out of range: the model has classes 0..{k - 1}"
                          if k else f"--label needs a class-conditional model; run {args.run_dir} has no label")
    opts = run.options(solver=args.solver, nfe=args.nfe, guidance=args.guidance, noise_scale=args.noise_scale,
                       inpaint=args.inpaint, resample=args.resample, temperature=args.temperature,
                       top_p=args.top_p, remask=args.remask, order_noise=args.order_noise,
                       potentials=_potentials(args.potential))
    if args.nfe is not None and opts.solver == "dopri5":
        raise PanflowError("dopri5 is adaptive and chooses its own NFE; drop --nfe (the NFE it used is reported)")
    if args.noise_scale is not None and opts.solver != "sde":
        raise PanflowError(f"--noise-scale is the sde solver's setting; solver '{opts.solver}' is deterministic "
                           "(use --solver sde)")
    if args.resample is not None and opts.inpaint != "repaint":
        raise PanflowError(f"--resample is the repaint method's setting; inpaint is '{opts.inpaint}' (use --inpaint repaint)")
    if not run.spec.conditions:
        opts = opts.unguided()  # nothing to guide on
    cond, known, x_known, n = {}, None, None, args.n
    if args.cond:
        cond, known, x_known, n = _load_cond(args.cond, args.n)
    n = n or run.cfg.sample.n
    if args.prefix is not None:
        if known is not None:
            raise ConfigError("give either --prefix or 'known' in --cond, not both")
        known, x_known = _prefix(run, args.prefix, n)
    if args.label not in (None, "null"):
        cond["label"] = torch.full((n,), int(args.label), dtype=torch.long)
    elif k and "label" not in cond and args.label is None and known is None:  # given parts speak for themselves
        cond["label"] = torch.arange(n) % k
    samples, setup = run.generate(n, opts, seed=args.seed, cond=cond, known=known, x_known=x_known)
    for p in stale:
        p.unlink(missing_ok=True)
    files = run.domain.write_samples(samples, out, meta=run.contract.get("dataset", {}))
    setup["files"] = sorted({Path(f).name for f in files})
    (out / "sampling.json").write_text(json.dumps(setup, indent=2))
    print(f"wrote {len(files)} file(s) to {out} (NFE {setup['nfe']}, solver {setup['solver']}, "
          f"{setup['wall_s']:.2f} s)")
    return 0


def _eval(args) -> int:
    from ..default_eval import default_evaluate
    from ..run import load_run
    from ..scorecard import write_result

    run = load_run(args.run_dir, device=args.device or "auto")
    _positive(n=args.n)
    kw = {"seed": args.seed}
    if args.n is not None:
        kw["n"] = args.n
    card = (run.domain.evaluate or default_evaluate)(run, **kw)  # no evaluator: the one built from its metrics
    out = Path(args.out or args.run_dir)
    jp, mp = write_result(out, "scorecard", card.to_json(), card.to_markdown())
    print(card.to_markdown())
    print(f"score card -> {jp}")
    return 0


def _bench(args) -> int:
    from ..bench import run_benchmarks

    if args.action:
        return _bench_compare(args)
    domains = [d.strip() for d in args.domains.split(",")] if args.domains else None
    if args.dry_run:
        from ..bench import plan

        rows = plan(domains, args.preset, args.out)
        known = [r[2] for r in rows if r[2] is not None]
        for name, dom, est, src in rows:
            print(f"{name:12s} ({dom}, preset {args.preset}): " + (f"~{est / 60:.1f} min, from {src}" if est is not None
                                                                  else src))
        total = ("unknown (no recorded runs)" if not known else f"~{sum(known) / 60:.1f} min"
                 + ("" if len(known) == len(rows) else f" for the {len(known)} with a recorded run"))
        print(f"{len(rows)} benchmark(s), estimated {total}; nothing was run (--dry-run)")
        return 0
    run_benchmarks(domains, args.preset, args.out, args.seed, log=lambda m: print(m, flush=True))
    return 0


def _bench_compare(args) -> int:
    from ..compare import compare, load_results

    if args.action[0] == "summary" and len(args.action) <= 2:
        from ..bench import headlines
        from ..summary import write_summary

        path = write_summary(args.action[1] if len(args.action) == 2 else args.out, headlines())
        print(path.read_text(), end="")
        print(f"summary -> {path}")
        return 0
    if args.action == ["ablate"]:
        from ..ablation import SWEEP, ablate, parse_sweep

        domains = [d.strip() for d in args.domains.split(",")] if args.domains else None
        variants = [v.strip() for v in args.variants.split(",")] if args.variants else None
        sweep = parse_sweep(args.sweep) if args.sweep else SWEEP
        path = ablate(domains, args.preset, args.out, args.seed, args.n, variants, log=lambda m: print(m, flush=True),
                      sweep=sweep)
        print(path.with_suffix(".md").read_text(), end="")
        print(f"ablation -> {path} (.md, .png)")
        return 0
    if args.action[0] == "report" and len(args.action) <= 2:
        from ..bench import write_report

        print(f"report -> {write_report(args.action[1] if len(args.action) == 2 else args.out)}")
        return 0
    if args.action[0] != "compare" or len(args.action) != 3:
        raise ConfigError(f"unknown bench action {' '.join(args.action)!r}: use 'panflow bench [--domains ...]', "
                          "'panflow bench compare OLD NEW', 'panflow bench summary [DIR]', 'panflow bench report [DIR]' "
                          "or 'panflow bench ablate'")
    cmp = compare(load_results(args.action[1]), load_results(args.action[2]), rel_tol=args.rel_tol,
                  time_tol=args.time_tol)
    md = cmp.to_markdown()
    print(md, end="")
    if args.report:
        Path(args.report).with_suffix(".md").write_text(md)
        Path(args.report).with_suffix(".json").write_text(json.dumps(cmp.to_json(), indent=2) + "\n")
    return 1 if args.fail_on_regression and cmp.failed else 0


def _encode(args) -> int:
    from ..latents import encode_source

    out = encode_source(args.source, args.out, device=args.device or "auto", batch_size=args.batch_size,
                        shard_size=args.shard_size)
    info = json.loads((out / "cache.json").read_text())
    print(f"encoded {info['samples']} samples -> {out} (train with --set data.cache='{out}')")
    return 0


def _reflow(args) -> int:  # few-step generation (issue 19): pairs for a 2-rectified flow
    from ..reflow import write_pairs
    from ..run import load_run

    _positive(n=args.n, chunk=args.chunk)
    run = load_run(args.run_dir, device=args.device or "auto")
    opts = run.options(solver=args.solver, nfe=args.nfe)
    out = write_pairs(run, args.out, args.n, opts, chunk=args.chunk, seed=args.seed)
    info = json.loads((out / "cache.json").read_text())["reflow"]
    print(f"wrote {args.n} (noise, sample) pairs -> {out} ({info['solver']}, NFE {info['nfe']}, {info['wall_s']:.1f} s); "
          f"train the 2-rectified flow with --set data.cache='{out}' --set flow.coupling=reflow")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="panflow", description="One flow-matching engine for many kinds of data.")
    p.add_argument("--version", action="version", version=f"panflow {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser("plugins", help="list installed plugins and their status")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(fn=_plugins)

    s = sub.add_parser("train", help="train a domain's model")
    s.add_argument("domain")
    s.add_argument("--dataset", help="a registered dataset of the domain")
    s.add_argument("--data", help="your own data (file or folder; the domain says which formats)")
    s.add_argument("--backbone")
    s.add_argument("--preset", choices=list(PRESET_NAMES), help="size preset (default small)")
    s.add_argument("--config", help="a TOML run config")
    s.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key (repeatable)")
    s.add_argument("--out", help="run directory (default runs/DOMAIN-DATASET-PRESET)")
    s.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    s.add_argument("--device", help="cpu | cuda | cuda:N (default: CUDA when available)")
    s.add_argument("--latent", action="store_true",
                   help="flow in the domain's learned latent space (shorthand for encoder.options.latent=true)")
    s.set_defaults(fn=_train)

    s = sub.add_parser("sample", help="write samples of a trained run in the domain's format")
    s.add_argument("run_dir")
    s.add_argument("--n", type=int, help="number of samples (default: the run's sample.n, or the --cond rows)")
    s.add_argument("--nfe", type=int)
    s.add_argument("--solver", help="flow: euler | midpoint | heun | rk4 | dopri5 | sde; "
                   "masked: ancestral | confidence | entropy | maskgit | remdm")
    s.add_argument("--prefix", help="text (or the domain's prompt) every sample starts with (masked domains)")
    s.add_argument("--temperature", type=float, help="masked: temperature of the unmasking distribution")
    s.add_argument("--top-p", type=float, dest="top_p", help="masked: nucleus mass of the unmasking distribution")
    s.add_argument("--remask", type=float, help="masked, remdm: remasking strength eta in [0, 1]")
    s.add_argument("--order-noise", type=float, dest="order_noise",
                   help="masked, confidence: Gumbel noise on the unmasking order")
    s.add_argument("--guidance", type=float)
    s.add_argument("--noise-scale", type=float, dest="noise_scale")
    s.add_argument("--label", type=_label_arg, help="class label for every sample (class-conditional models), or "
                   "'null' for none (unconditional); default: the classes in turn, none when parts are given")
    s.add_argument("--cond", metavar="FILE.npz",
                   help="condition arrays by name (one row = every sample), optional 'known' + 'x_known'")
    s.add_argument("--inpaint", help="how known parts are held: trained (default), or training-free "
                   "replacement | repaint (see --resample)")
    s.add_argument("--resample", type=int, help="repaint: takes of each step (multiplies the NFE; default 10)")
    s.add_argument("--potential", type=_potential_arg, action="append", metavar="NAME[:key=value,...]",
                   help="steer sampling by a registered potential, e.g. rg:weight=1,t_max=0.98 (repeatable; "
                   "replaces the run's sample.potentials)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out")
    s.add_argument("--device")
    s.set_defaults(fn=_sample)

    s = sub.add_parser("eval", help="compute a trained run's score card")
    s.add_argument("run_dir")
    s.add_argument("--n", type=int)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out")
    s.add_argument("--device")
    s.set_defaults(fn=_eval)

    s = sub.add_parser("encode", help="pre-encode a run's training set into a chunked latent store")
    s.add_argument("source", metavar="RUN_OR_CONFIG", help="a run directory or a TOML run config")
    s.add_argument("--out", required=True, help="the cache directory to write")
    s.add_argument("--device", help="cpu | cuda | cuda:N (default: CUDA when available)")
    s.add_argument("--batch-size", type=int, default=256, dest="batch_size")
    s.add_argument("--shard-size", type=int, default=4096, dest="shard_size", help="samples per shard file")
    s.set_defaults(fn=_encode)

    s = sub.add_parser("reflow", help="write a run's own (noise, sample) pairs for reflow training")
    s.add_argument("run_dir")
    s.add_argument("--out", required=True, help="the pair cache to write (train with data.cache=OUT)")
    s.add_argument("--n", type=int, default=100_000, help="pairs to generate (default 100000)")
    s.add_argument("--chunk", type=int, default=4096, help="pairs generated and written at a time")
    s.add_argument("--solver")
    s.add_argument("--nfe", type=int)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device")
    s.set_defaults(fn=_reflow)

    s = sub.add_parser("bench", help="run the installed domains' benchmarks, or compare two result sets",
                       usage="panflow bench [--domains a,b] [--preset P] [--out DIR] [--seed S] [--dry-run]\n"
                             "       panflow bench compare OLD NEW [--rel-tol R] [--time-tol R] [--fail-on-regression]"
                             " [--report FILE]\n       panflow bench summary [DIR]\n       panflow bench report [DIR]\n"
                             "       panflow bench ablate [--domains a,b] [--preset P] [--variants v,w] [--sweep S]"
                             " [--n N] [--out DIR]")
    s.add_argument("action", nargs="*", help=argparse.SUPPRESS)
    s.add_argument("--dry-run", action="store_true", dest="dry_run",
                   help="print the benchmarks and their estimated time (from recorded runs), run nothing")
    s.add_argument("--rel-tol", type=float, default=0.05, dest="rel_tol",
                   help="compare: relative tolerance for values without a recorded standard error")
    s.add_argument("--time-tol", type=float, default=0.25, dest="time_tol",
                   help="compare: relative tolerance for speed (wall-clock) bars")
    s.add_argument("--fail-on-regression", action="store_true", dest="fail_on_regression",
                   help="compare: exit 1 when a bar regressed")
    s.add_argument("--report", help="compare: also write FILE.md and FILE.json")
    s.add_argument("--variants", help="ablate: comma-separated variants (default: all registered)")
    s.add_argument("--n", type=int, default=256, help="ablate: items each evaluation scores")
    s.add_argument("--sweep", help="ablate: the default model's solvers and NFE, e.g. 'euler:1,2,4,64;heun:8,16'")
    s.add_argument("--domains", help="comma-separated domains (default: all installed)")
    s.add_argument("--preset", default="quick", choices=list(PRESET_NAMES),
                   help="quick (default: minutes per domain), smoke (plumbing only), small, full")
    s.add_argument("--out", default="benchmarks/results")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(fn=_bench)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "fn", None):
        parser.print_help()
        return 0
    try:
        return int(args.fn(args) or 0)
    except PanflowError as exc:
        from ..trainer import Interrupted

        if isinstance(exc, Interrupted):
            print(f"panflow: {exc}", file=sys.stderr)
            return 130
        print(f"panflow: error: {_unavailable_hint(exc) or exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # unwritable --out, a full disk, a file where a folder should be
        print(f"panflow: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("panflow: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
