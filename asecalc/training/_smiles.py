"""Molecules from SMILES strings (RDKit ETKDG embedding + MMFF94 relaxation).

Used by the ``organics`` recipes and by ``eformer datagen --recipe smiles:SMILES``.
The MMFF geometry is only a start: the datagen samplers relax it with the
reference method before sampling. RDKit is an optional dependency
(``pip install rdkit``, in the ``all`` and ``test`` extras).
"""

from __future__ import annotations

from typing import Any

from ase import Atoms


def _rdkit() -> tuple[Any, Any]:
    try:
        from rdkit import Chem, RDLogger
        from rdkit.Chem import AllChem
    except ImportError as err:
        raise ImportError(
            "building molecules from SMILES needs RDKit: pip install rdkit"
        ) from err
    RDLogger.DisableLog("rdApp.*")  # type: ignore[attr-defined]
    return Chem, AllChem


def _parse(chem: Any, smiles: str) -> Any:
    """RDKit molecule of ``smiles``; ValueError if it does not parse."""
    mol = chem.MolFromSmiles(smiles)
    if mol is None:
        raise ValueError(f"cannot parse SMILES {smiles!r}")
    return mol


def canonical_smiles(smiles: str) -> str:
    """RDKit's canonical form of ``smiles`` (ValueError if it does not parse)."""
    chem, _ = _rdkit()
    return str(chem.MolToSmiles(_parse(chem, smiles)))


def atoms_from_smiles(smiles: str, seed: int = 0) -> Atoms:
    """A 3D geometry (Å) of the neutral molecule ``smiles``, hydrogens added.

    Parameters
    ----------
    smiles : str
        E.g. ``"c1ccccc1O"`` (phenol).
    seed : int
        Seed of the ETKDG conformer embedding.

    Raises
    ------
    ValueError
        If the SMILES does not parse, is charged, or cannot be embedded in 3D.
    """
    chem, allchem = _rdkit()
    mol = _parse(chem, smiles)
    if chem.GetFormalCharge(mol) != 0:
        raise ValueError(
            f"SMILES {smiles!r} has net charge {chem.GetFormalCharge(mol)}; "
            "the models have no charge input, give a neutral molecule"
        )
    mol = chem.AddHs(mol)
    params = allchem.ETKDGv3()
    params.randomSeed = int(seed)
    if allchem.EmbedMolecule(mol, params) != 0:
        raise ValueError(f"RDKit could not embed SMILES {smiles!r} in 3D")
    if allchem.MMFFHasAllMoleculeParams(mol):
        allchem.MMFFOptimizeMolecule(mol, maxIters=2000)
    positions = mol.GetConformer().GetPositions()
    numbers = [atom.GetAtomicNum() for atom in mol.GetAtoms()]
    return Atoms(numbers=numbers, positions=positions)
