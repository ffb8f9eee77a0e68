"""Compare `eformer al` runs (uncertainty vs random selection) on a test set.

Step 4 of ``benchmarks/al_vs_random.sh``; can be re-run on finished or partial runs::

    python benchmarks/al_vs_random_report.py OUT_DIR [--runs uncertainty random ...]
        [--previous OLD/al_vs_random.json]

For every round model of each run ``OUT_DIR/<run>`` (default: ``uncertainty`` and
``random``; add variants such as ``uncertainty_pf1.5`` and more random seeds such
as ``random_seed1``) it measures force and energy errors on the whole test set
(from ``al_report.json``) and on each subset of ``OUT_DIR/test.db`` (its
``test_source`` key: 300 K MD frames and metadynamics frames), counts where the
selected labels came from (exploration method), compares every non-random run
with all ``random*`` runs, and writes ``OUT_DIR/al_vs_random.json`` and
``OUT_DIR/al_vs_random.png``; ``pooled`` in the JSON sets all trust-window runs
(``uncertainty_window*``) against all random seeds per label count, with a
one-sided Mann-Whitney test. ``--previous`` keeps the runs of an earlier report
whose folders are gone. Units: force MAE in meV/Å, energy MAE in meV/atom.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

RUNS = ("uncertainty", "random")


def _forked_row(run: Path, round_: int, previous: dict) -> dict:
    """Per-subset errors of a round a fork copied: from the source run's row in the
    ``--previous`` report (empty if it is not there)."""
    fork = run / "fork.json"
    if not fork.exists():
        return {}
    source = Path(json.loads(fork.read_text())["source"]).name
    for row in previous.get(source, {}).get("rounds", []):
        if row["round"] == round_:
            return {k: v for k, v in row.items() if k.startswith("test_")}
    return {}


def subset_errors(model: Path, test_db: Path) -> dict[str, dict[str, float]]:
    """Force MAE (meV/Å) and energy MAE (meV/atom) of a model file per test subset.

    Subsets are the ``test_source`` keys of ``test_db`` (here ``test_md.db`` and
    ``test_metad.db``), named by their stem; ensemble mean, as ``eformer eval``.
    """
    from asecalc.checkpoint import load_model
    from asecalc.training.evaluate import evaluate_model

    result = evaluate_model(load_model(model), test_db, by="test_source")
    keys = ("forces_mae_meV_per_A", "energy_mae_meV_per_atom")
    return {
        Path(name).stem: {k: metrics[k] for k in keys}
        for name, metrics in result["by_test_source"].items()
    }


def label_sources(labels: Path) -> dict[str, int]:
    """Selected labels per exploration method (md@T / metad), seed excluded."""
    import ase.db

    counts: Counter[str] = Counter()
    for row in ase.db.connect(labels).select("al_round>0"):
        counts[str(row.get("source", "?")).split("#")[0]] += 1
    return dict(sorted(counts.items()))


def compare_with_random(runs: dict, subsets: list[str]) -> dict:
    """Each selection run against every random run (``random*``, one per seed).

    The verdict is taken at the largest label count that the run and all random
    runs reached: the run is better only if its whole-test force MAE is below
    that of every random seed. ``al_better_at`` gives the same verdict at each
    label count of the run, against the random seeds that reached it (counted).
    ``subsets`` are the per-subset keys of the rounds (``test_md``, ...).
    """
    randoms = sorted(k for k in runs if k.startswith("random"))
    by_n = [{r["n_labels"]: r for r in runs[k]["rounds"]} for k in randoms]

    def reached(n: int) -> list[dict]:  # the random rounds with n labels
        return [b[n] for b in by_n if n in b]

    def verdict(row: dict) -> bool:  # below every random seed at this count
        rand = reached(row["n_labels"])
        return _mae(row, "test") < min(_mae(b, "test") for b in rand)

    out = {}
    for name, run in runs.items():
        common = [r for r in run["rounds"] if len(reached(r["n_labels"])) == len(by_n)]
        if name in randoms or not randoms or not common:
            continue
        mine = common[-1]
        out[name] = {
            "n_labels": mine["n_labels"],
            "random_runs": randoms,
            "forces_mae_meV_per_A": {
                subset: {
                    "al": _mae(mine, subset),
                    "random": [_mae(b, subset) for b in reached(mine["n_labels"])],
                }
                for subset in ["test", *subsets]
            },
            "al_better": verdict(mine),
            # at every label count of the run that some random seed reached
            "al_better_at": {
                str(r["n_labels"]): {
                    "better": verdict(r),
                    "random_seeds": len(reached(r["n_labels"])),
                }
                for r in run["rounds"]
                if reached(r["n_labels"])
            },
        }
    return out


def pooled_comparison(runs: dict, prefix: str = "uncertainty_window") -> dict:
    """All runs named ``prefix*`` against all ``random*`` runs, per label count.

    Per label count: the whole-test force MAEs (meV/Å) of each group, their
    means, and the one-sided Mann-Whitney p-value that the ``prefix`` runs are
    lower (None with fewer than two runs in a group). A round that a fork copied
    from its source (same label count, same error) is counted once.
    """
    from scipy.stats import mannwhitneyu

    groups: dict[str, dict[int, list[float]]] = {"al": {}, "random": {}}
    for name, run in runs.items():
        group = "random" if name.startswith("random") else "al"
        if group == "al" and not name.startswith(prefix):
            continue
        for row in run["rounds"]:
            values = groups[group].setdefault(row["n_labels"], [])
            if not any(abs(v - _mae(row, "test")) < 1e-9 for v in values):
                values.append(_mae(row, "test"))
    out = {}
    for n in sorted(set(groups["al"]) & set(groups["random"])):
        al, rand = groups["al"][n], groups["random"][n]
        p_value = None
        if len(al) > 1 and len(rand) > 1:
            p_value = float(mannwhitneyu(al, rand, alternative="less").pvalue)
        out[str(n)] = {
            "al": al,
            "random": rand,
            "al_mean": float(np.mean(al)),
            "random_mean": float(np.mean(rand)),
            "mannwhitney_p_al_lower": p_value,
        }
    return {"al_runs": prefix + "*", "by_labels": out}


def _mae(row: dict, subset: str) -> float:
    if subset == "test":
        return row["test_forces_mae_meV_per_A"]
    return row[subset]["forces_mae_meV_per_A"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("--runs", nargs="*", default=list(RUNS), help="run folders")
    p.add_argument(
        "--previous",
        type=Path,
        help="an earlier al_vs_random.json: its runs not in --runs are kept "
        "(their run folders may be gone), so comparisons span both",
    )
    args = p.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    result: dict = {"strategies": {}}
    previous = (
        json.loads(args.previous.read_text())["strategies"] if args.previous else {}
    )
    for strategy in args.runs:
        report_path = args.out / strategy / "al_report.json"
        if not report_path.exists():
            print(f"{report_path} missing: skipped", file=sys.stderr)
            continue
        report = json.loads(report_path.read_text())
        rounds = []
        for r in report["rounds"]:
            if "test" not in r:
                continue
            model = (
                args.out / strategy / f"round_{r['round']:03d}" / "train" / "model.pt"
            )
            row = {
                "round": r["round"],
                "n_labels": r["n_labels"],
                "test_forces_mae_meV_per_A": 1000 * r["test"]["forces_mae"],
                "test_spearman": r["test"].get("spearman"),
            }
            if model.exists():
                row.update(subset_errors(model, args.out / "test.db"))
            else:  # a fork (eformer al --fork-from) holds no models of earlier rounds
                row.update(_forked_row(args.out / strategy, r["round"], previous))
            rounds.append(row)
        result["strategies"][strategy] = {
            "rounds": rounds,
            "label_sources": label_sources(args.out / strategy / "labels.db"),
        }
    if args.previous is not None:
        for name, run in previous.items():
            if name not in result["strategies"]:
                result["strategies"][name] = {**run, "from": str(args.previous)}
    done = result["strategies"]
    subsets = sorted(  # per-subset error dicts: test_md, test_metad
        {
            k
            for run in done.values()
            for r in run["rounds"]
            for k, v in r.items()
            if k.startswith("test_") and isinstance(v, dict)
        }
    )
    result["comparisons"] = compare_with_random(done, subsets)
    result["pooled"] = pooled_comparison(done)
    if "uncertainty" in result["comparisons"]:
        result["al_better"] = result["comparisons"]["uncertainty"]["al_better"]
    keys = [("test", "whole test set")] + [(name, name) for name in subsets]
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.4), sharey=True)
    for ax, (key, title) in zip(np.atleast_1d(axes), keys, strict=True):
        for strategy, res in done.items():
            xs = [r["n_labels"] for r in res["rounds"]]
            ys = [_mae(r, key) for r in res["rounds"]]
            style = "o--" if strategy.startswith("random") else "o-"
            ax.plot(xs, ys, style, label=strategy)
        ax.set(xlabel="labels (GFN2-xTB)", title=title)
    np.atleast_1d(axes)[0].set_ylabel("force MAE (meV/Å)")
    np.atleast_1d(axes)[0].legend()
    fig.tight_layout()
    fig.savefig(args.out / "al_vs_random.png", dpi=100)
    from asecalc.fileio import write_json_atomic

    write_json_atomic(args.out / "al_vs_random.json", result)
    print(json.dumps(result["comparisons"], indent=1))
    for n, row in result["pooled"]["by_labels"].items():
        print(
            f"{n} labels: {result['pooled']['al_runs']} {row['al_mean']:.1f} "
            f"(n={len(row['al'])}) vs random {row['random_mean']:.1f} "
            f"(n={len(row['random'])}), p = {row['mannwhitney_p_al_lower']}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
