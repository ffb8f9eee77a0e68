"""``eformer phonons``: phonons of a crystal (phonopy) or vibrations of a molecule."""

from __future__ import annotations

import argparse
import csv
import io
import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from asecalc.cli._common import (
    add_calc_argument,
    make_calculator,
    print_json,
    write_json_atomic,
    write_text_atomic,
)

if TYPE_CHECKING:
    from ase import Atoms

logger = logging.getLogger(__name__)


class CLICommand:
    """
    Phonons (crystals, phonopy) or harmonic vibrations (molecules).

    Crystal (periodic cell): finite-displacement force constants with phonopy,
    band structure on the automatic high-symmetry path, DOS, thermal
    properties and imaginary-mode warnings. Writes to --output-dir:
    phonopy_params.yaml (structure, displacements, forces, force constants),
    bands_dos.png, thermal_properties.csv, structure.extxyz and summary.json.

    Molecule (no periodic cell): harmonic frequencies with ase.vibrations at
    the structure relaxed by each calculator, optionally compared with a
    reference method (--reference xtb: GFN2-xTB). Writes vibrations.csv and
    summary.json.

      eformer phonons Si.cif --model mlearn-pbe --supercell 3 3 3 --relax --json
      eformer phonons Cu.cif --calc emt --supercell 4 4 4
      eformer phonons h2o.xyz --calc emt --reference xtb --json
    """

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        """Add the ``phonons`` options."""
        parser.add_argument("structure", help="structure file readable by ase.io")
        add_calc_argument(parser)
        parser.add_argument(
            "--supercell",
            type=int,
            nargs=3,
            default=[3, 3, 3],
            metavar="N",
            help="supercell multiples of the input cell (default 3 3 3)",
        )
        parser.add_argument(
            "--displacement",
            type=float,
            default=0.01,
            help="finite-difference displacement in Å (default 0.01)",
        )
        parser.add_argument(
            "--relax",
            action="store_true",
            help="crystals: relax positions and cell (FrechetCellFilter, symmetry "
            "kept) before phonons; molecules are always relaxed",
        )
        parser.add_argument(
            "--fixed-cell",
            action="store_true",
            help="with --relax, relax positions only",
        )
        parser.add_argument(
            "--fmax",
            type=float,
            default=1e-3,
            help="relaxation force threshold in eV/Å (default 1e-3)",
        )
        parser.add_argument(
            "--mesh",
            type=int,
            nargs=3,
            default=[20, 20, 20],
            metavar="N",
            help="q mesh for DOS and thermal properties (default 20 20 20)",
        )
        parser.add_argument(
            "--temperatures",
            type=float,
            nargs=3,
            default=[0.0, 1000.0, 50.0],
            metavar=("TMIN", "TMAX", "TSTEP"),
            help="temperature grid in K (default 0 1000 50)",
        )
        parser.add_argument("--npoints", type=int, default=150, help="band-path points")
        parser.add_argument(
            "--batch-size",
            type=int,
            default=1,
            help="supercells per call when the calculator has calculate_batch",
        )
        parser.add_argument(
            "--imaginary-tol",
            type=float,
            default=0.05,
            help="warn below -TOL THz (default 0.05)",
        )
        parser.add_argument(
            "--reference",
            default=None,
            help="molecules: reference calculator spec to compare with (e.g. xtb)",
        )
        parser.add_argument(
            "--output-dir",
            default="phonons-out",
            help="output folder (default ./phonons-out)",
        )
        parser.add_argument("--json", action="store_true", help="print a JSON summary")

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        """Run phonons or molecular vibrations and write the outputs."""
        from ase.io import read

        atoms = cast("Atoms", read(args.structure))
        output_dir = Path(args.output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        calc = make_calculator(args.calc, args.device)
        if atoms.pbc.any() and atoms.cell.rank == 3:
            summary = _run_crystal(atoms, calc, args, output_dir)
        elif atoms.pbc.any():
            raise ValueError(
                f"{args.structure}: periodic in {atoms.pbc.sum()} directions only; "
                "phonons need a 3D cell and vibrations a molecule with pbc=False"
            )
        else:
            summary = _run_molecule(atoms, calc, args, output_dir)
        summary = {"structure": str(args.structure), "calc": args.calc, **summary}
        write_json_atomic(output_dir / "summary.json", summary)
        if args.json:
            print_json(summary)
        return 0


def _run_crystal(
    atoms: Any, calc: Any, args: argparse.Namespace, output_dir: Path
) -> dict[str, Any]:
    import numpy as np

    from analysis import phonons

    tmin, tmax, tstep = args.temperatures
    if tstep <= 0 or tmax < tmin or tmin < 0:
        raise ValueError(
            f"--temperatures TMIN TMAX TSTEP needs 0 <= TMIN <= TMAX and TSTEP > 0, "
            f"got {args.temperatures}"
        )
    temperatures = np.arange(tmin, tmax + 0.5 * tstep, tstep)
    result = phonons.run_phonons(
        atoms,
        calc,
        supercell=args.supercell,
        displacement=args.displacement,
        relax=args.relax,
        relax_cell=args.relax and not args.fixed_cell,
        fmax=args.fmax,
        mesh=args.mesh,
        temperatures_K=temperatures,
        npoints=args.npoints,
        batch_size=args.batch_size,
        imaginary_tolerance_THz=args.imaginary_tol,
    )
    files = {
        "phonopy_params": _save_phonopy(
            result.phonon, output_dir / "phonopy_params.yaml"
        ),
        "bands_dos_png": str(
            _plot_bands_and_dos(
                result, output_dir / "bands_dos.png", title=Path(args.structure).stem
            )
        ),
        "thermal_properties_csv": _write_thermal_csv(result, output_dir),
        "structure": _write_structure(result.atoms, output_dir / "structure.extxyz"),
    }
    free_kjmol = result.free_energy * phonons.EV_TO_KJMOL
    return {
        "kind": "crystal",
        "n_atoms_primitive": len(result.phonon.primitive),
        "n_atoms_supercell": len(result.phonon.supercell),
        "supercell": list(args.supercell),
        "n_displacements": len(result.phonon.dataset["first_atoms"]),
        "relaxed": bool(args.relax),
        "cell_angstrom": np.round(np.array(result.atoms.cell[:]), 10) + 0.0,
        "high_symmetry_frequencies_THz": result.high_symmetry_frequencies_THz,
        "min_frequency_THz": result.min_frequency_THz,
        "imaginary_modes": bool(result.min_frequency_THz < -args.imaginary_tol),
        "free_energy_table": [
            {
                "temperature_K": t,
                "free_energy_eV_per_atom": f,
                "free_energy_kJ_per_mol": k,
            }
            for t, f, k in zip(
                result.temperatures_K, result.free_energy, free_kjmol, strict=True
            )
        ],
        "files": files,
    }


def _run_molecule(
    atoms: Any, calc: Any, args: argparse.Namespace, output_dir: Path
) -> dict[str, Any]:
    from analysis import vibrations

    result = vibrations.harmonic_frequencies(atoms, calc, relax=True, fmax=args.fmax)
    summary: dict[str, Any] = {"kind": "molecule", **_vib_summary(result)}
    columns = {"model_cm": result.vibrational_cm, "model_meV": result.vibrational_meV}
    if args.reference:
        ref_calc = make_calculator(args.reference, args.device)
        reference = vibrations.harmonic_frequencies(
            atoms, ref_calc, relax=True, fmax=args.fmax
        )
        summary["reference"] = {"calc": args.reference, **_vib_summary(reference)}
        summary["comparison"] = vibrations.compare_frequencies(result, reference)
        columns["reference_cm"] = reference.vibrational_cm
        columns["reference_meV"] = reference.vibrational_meV
        logger.info(
            "vibrations: MAE %.1f cm^-1 (%.2f meV) against %s",
            summary["comparison"]["mae_cm"],
            summary["comparison"]["mae_meV"],
            args.reference,
        )
    rows = zip(*columns.values(), strict=True)
    summary["files"] = {
        "vibrations_csv": _write_csv(output_dir / "vibrations.csv", list(columns), rows)
    }
    return summary


def _vib_summary(result: Any) -> dict[str, Any]:
    return {
        "n_rigid_body_modes": result.n_rigid_body_modes,
        "frequencies_cm": result.vibrational_cm,
        "frequencies_meV": result.vibrational_meV,
        "min_frequency_cm": float(result.vibrational_cm.min())
        if result.vibrational_cm.size
        else None,
    }


def _write_thermal_csv(result: Any, output_dir: Path) -> str:
    from analysis.phonons import EV_TO_KJMOL

    header = [
        "temperature_K",
        "free_energy_eV_per_atom",
        "free_energy_kJ_per_mol",
        "entropy_eV_per_K_atom",
        "heat_capacity_eV_per_K_atom",
    ]
    rows = zip(
        result.temperatures_K,
        result.free_energy,
        result.free_energy * EV_TO_KJMOL,
        result.entropy,
        result.heat_capacity,
        strict=True,
    )
    return _write_csv(output_dir / "thermal_properties.csv", header, rows)


def _write_csv(path: Path, header: list[str], rows: Any) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([[f"{float(v):.10g}" for v in row] for row in rows])
    write_text_atomic(path, buffer.getvalue())
    return str(path)


def _save_phonopy(phonon: Any, path: Path) -> str:
    """phonopy yaml with forces and force constants, written atomically."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        phonon.save(filename=tmp, settings={"force_constants": True})
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return str(path)


def _write_structure(atoms: Any, path: Path) -> str:
    from ase.io import write

    buffer = io.StringIO()
    write(buffer, atoms, format="extxyz")
    write_text_atomic(path, buffer.getvalue())
    return str(path)


def _plot_bands_and_dos(result: Any, filename: str | Path, title: str = "") -> Any:
    """Save the band structure and DOS side by side as PNG; returns the path."""
    import numpy as np
    from matplotlib.figure import Figure  # no pyplot: no backend or global state

    x, special_x, labels = result.path.get_linear_kpoint_axis()
    fig = Figure(figsize=(8, 4.5), layout="tight")
    ax_band, ax_dos = fig.subplots(
        1, 2, sharey=True, gridspec_kw={"width_ratios": [3, 1]}
    )
    breaks = np.flatnonzero(np.diff(x) == 0) + 1  # path jumps ("K,U")
    for seg_x, seg_f in zip(
        np.split(x, breaks), np.split(result.band_frequencies_THz, breaks), strict=True
    ):
        ax_band.plot(seg_x, seg_f, color="C0", lw=1)
    ticks: dict[float, str] = {}
    for position, label in zip(special_x, labels, strict=True):
        name = label.replace("G", "Γ")
        ticks[position] = f"{ticks[position]}|{name}" if position in ticks else name
    for position in ticks:
        ax_band.axvline(position, color="0.7", lw=0.5)
    ax_band.axhline(0.0, color="k", lw=0.5)
    ax_band.set_xticks(list(ticks), list(ticks.values()))
    ax_band.set_xlim(x[0], x[-1])
    ax_band.set_ylabel("frequency (THz)")
    ax_band.set_title(title)
    ax_dos.plot(result.dos, result.dos_frequencies_THz, color="C1")
    low = min(0.0, float(result.band_frequencies_THz.min()))
    ax_band.set_ylim(low - 0.05 * (result.band_frequencies_THz.max() - low), None)
    ax_dos.set_xlabel("DOS (states/THz)")
    fig.savefig(filename, dpi=120)
    return filename
