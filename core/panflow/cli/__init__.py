"""The ``panflow`` command line: plugins, train, sample, eval, encode, bench."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .._version import __version__
from ..errors import PanflowError


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


def _train(args) -> int:
    from ..run import build_config, train

    overrides = list(args.set or [])
    if args.device:
        overrides.append(f'train.device="{args.device}"')
    if args.latent:
        overrides.insert(0, "encoder.options.latent=true")
    cfg = build_config(args.domain, args.preset, args.config, overrides, args.dataset, args.data, args.backbone)
    out = Path(args.out or f"runs/{args.domain}-{cfg.data.dataset}-{args.preset}")
    run_dir = train(cfg, out, resume=args.resume)
    print(f"trained {cfg.train.steps} steps -> {run_dir}")
    return 0


def _sample(args) -> int:
    import torch

    from ..run import load_run

    run = load_run(args.run_dir, device=args.device or "auto")
    opts = run.options(solver=args.solver, nfe=args.nfe, guidance=args.guidance, noise_scale=args.noise_scale)
    labels = None
    if args.label is not None:
        labels = torch.full((args.n,), args.label, dtype=torch.long)
    elif run.spec.num_classes:
        labels = torch.arange(args.n) % run.spec.num_classes
    samples, setup = run.generate(args.n, opts, labels=labels, seed=args.seed)
    out = Path(args.out or Path(args.run_dir) / "samples")
    files = run.domain.write_samples(samples, out, meta=run.contract.get("dataset", {}))
    (out / "sampling.json").write_text(json.dumps(setup, indent=2))
    print(f"wrote {len(files)} file(s) to {out} (NFE {setup['nfe']}, solver {setup['solver']}, "
          f"{setup['wall_s']:.2f} s)")
    return 0


def _eval(args) -> int:
    from ..run import load_run
    from ..scorecard import write_result

    run = load_run(args.run_dir, device=args.device or "auto")
    if run.domain.evaluate is None:
        raise PanflowError(f"domain '{run.domain.name}' has no evaluator")
    kw = {"seed": args.seed}
    if args.n:
        kw["n"] = args.n
    card = run.domain.evaluate(run, **kw)
    out = Path(args.out or args.run_dir)
    jp, mp = write_result(out, "scorecard", card.to_json(), card.to_markdown())
    print(card.to_markdown())
    print(f"score card -> {jp}")
    return 0


def _bench(args) -> int:
    from ..bench import run_benchmarks

    domains = [d.strip() for d in args.domains.split(",")] if args.domains else None
    run_benchmarks(domains, args.preset, args.out, args.seed, log=lambda m: print(m, flush=True))
    return 0


def _encode(args) -> int:
    from ..latents import encode_source

    out = encode_source(args.source, args.out, device=args.device or "auto", batch_size=args.batch_size,
                        shard_size=args.shard_size)
    info = json.loads((out / "cache.json").read_text())
    print(f"encoded {info['samples']} samples -> {out} (train with --set data.cache='{out}')")
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
    s.add_argument("--preset", default="small", choices=["smoke", "small", "full"])
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
    s.add_argument("--n", type=int, default=64)
    s.add_argument("--nfe", type=int)
    s.add_argument("--solver")
    s.add_argument("--guidance", type=float)
    s.add_argument("--noise-scale", type=float, dest="noise_scale")
    s.add_argument("--label", type=int, help="class label for every sample (class-conditional models)")
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

    s = sub.add_parser("bench", help="run the installed domains' benchmarks")
    s.add_argument("--domains", help="comma-separated domains (default: all installed)")
    s.add_argument("--preset", default="smoke", choices=["smoke", "small", "full"])
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
        print(f"panflow: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("panflow: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
