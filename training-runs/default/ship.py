"""Ship a trained model file as the bundled default (float64) and regenerate its card.

Usage (from the repository root):
    python training-runs/default/ship.py MODEL --init "what it was fine-tuned from" \
        --status "provisional (... min CPU training, one thread)"

Steps: export MODEL in float64 to ``asecalc/models/default.pt`` with provenance
metadata (the run's own metadata plus ``init``, ``status`` and the level of theory),
then regenerate ``asecalc/models/default.md`` from
``training-runs/default/card_notes.md`` on ``data/xtb_chno_water_test.db``. Edit the
notes' status paragraph and the README's bundled-models row by hand; then re-run
``benchmarks/nve_50ps.sh`` into a fresh folder: an old checkpoint refuses to resume
with another model (its calculator fingerprint differs).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from asecalc.checkpoint import export_model, load_model

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = ROOT / "asecalc" / "models" / "default.pt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="trained model file (float32 is fine)")
    parser.add_argument("--init", required=True, help="what it was trained from")
    parser.add_argument("--status", required=True, help="one-line training status")
    parser.add_argument("--data-note", default=None, help="training data provenance")
    args = parser.parse_args()
    trained = load_model(args.model)
    metadata = {
        "init": args.init,
        "status": args.status,
        "level_of_theory": "GFN2-xTB (tblite 0.8)",
    }
    if args.data_note:
        metadata["data"] = [args.data_note]
    export_model(args.model, DEFAULT, dtype="float64", metadata=metadata)
    shipped = load_model(DEFAULT)
    assert shipped.config.dtype == "float64"
    assert len(shipped.members) == len(trained.members)
    print(f"wrote {DEFAULT} (float64, {len(shipped.members)} member(s))")
    subprocess.run(  # relative paths: the card quotes this command
        [
            sys.executable, "-m", "asecalc.training.modelcard",
            "asecalc/models/default.pt",
            "--test", "data/xtb_chno_water_test.db",
            "--by", "recipe",
            "--title", "default (CHNO + water, GFN2-xTB)",
            "--notes", "training-runs/default/card_notes.md",
            "--output", "asecalc/models/default.md",
        ],
        check=True,
        cwd=ROOT,
    )  # fmt: skip
    print("regenerated asecalc/models/default.md; now edit README's bundled-models row")


if __name__ == "__main__":
    main()
