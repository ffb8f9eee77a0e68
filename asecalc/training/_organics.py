"""CHNO organic molecules by SMILES for the ``organics*`` datagen recipes.

Pure data: name -> SMILES dictionaries, read by :mod:`asecalc.training.recipes`.
"""

from __future__ import annotations

#: Training molecules of the ``organics`` recipe: name -> SMILES. None of them is
#: a G2 molecule or one of ``G2_HOLDOUT`` / :data:`ORGANICS_HOLDOUT`.
ORGANICS: dict[str, str] = {
    "phenol": "Oc1ccccc1",
    "aniline": "Nc1ccccc1",
    "anisole": "COc1ccccc1",
    "benzaldehyde": "O=Cc1ccccc1",
    "benzoic_acid": "OC(=O)c1ccccc1",
    "benzonitrile": "N#Cc1ccccc1",
    "nitrobenzene": "[O-][N+](=O)c1ccccc1",
    "ethylbenzene": "CCc1ccccc1",
    "styrene": "C=Cc1ccccc1",
    "pyrimidine": "c1cncnc1",
    "pyrazine": "c1cnccn1",
    "imidazole": "c1c[nH]cn1",
    "pyrazole": "c1cc[nH]n1",
    "oxazole": "c1cocn1",
    "indole": "c1ccc2[nH]ccc2c1",
    "quinoline": "c1ccc2ncccc2c1",
    "2-pyridone": "O=c1cccc[nH]1",
    "urea": "NC(N)=O",
    "formamide": "NC=O",
    "dimethylformamide": "CN(C)C=O",
    "methyl_acetate": "COC(C)=O",
    "ethyl_acetate": "CCOC(C)=O",
    "propanoic_acid": "CCC(=O)O",
    "acrylic_acid": "C=CC(=O)O",
    "lactic_acid": "CC(O)C(=O)O",
    "ethylene_glycol": "OCCO",
    "glycerol": "OCC(O)CO",
    "tetrahydrofuran": "C1CCOC1",
    "1,4-dioxane": "C1COCCO1",
    "cyclohexane": "C1CCCCC1",
    "cyclohexanone": "O=C1CCCCC1",
    "piperidine": "C1CCNCC1",
    "morpholine": "C1COCCN1",
    "serine": "NC(CO)C(=O)O",
    "proline": "OC(=O)C1CCCN1",
    "caffeine": "Cn1cnc2c1c(=O)n(C)c(=O)n2C",
    "ibuprofen": "CC(C)Cc1ccc(cc1)C(C)C(=O)O",
}

#: Molecules of public benchmarks (rMD17, 3BPA, acetylacetone) kept out of every
#: training recipe: name -> SMILES (``organics-holdout``). Benzene and ethanol of
#: rMD17 are G2 training molecules and are not listed.
ORGANICS_HOLDOUT: dict[str, str] = {
    "aspirin": "CC(=O)Oc1ccccc1C(=O)O",
    "azobenzene": "c1ccc(/N=N/c2ccccc2)cc1",
    "malonaldehyde": "O=C/C=C/O",
    "naphthalene": "c1ccc2ccccc2c1",
    "paracetamol": "CC(=O)Nc1ccc(O)cc1",
    "salicylic_acid": "O=C(O)c1ccccc1O",
    "toluene": "Cc1ccccc1",
    "uracil": "O=c1cc[nH]c(=O)[nH]1",
    "3bpa": "Nc1ncccc1OCc1ccccc1",
    "acetylacetone": "CC(=O)CC(C)=O",
}

#: Molecules of the ``organics-extra`` recipe: name -> SMILES. More ring systems
#: (fused, several heteroatoms, lactams, lactones), biaryls, oximes, an azo
#: compound, carbonates, carbamates and amino acids. None is a G2 molecule (nor an
#: isomer of a ``G2_HOLDOUT`` one), an :data:`ORGANICS` molecule or an
#: :data:`ORGANICS_HOLDOUT` one; the closest analogues of the held-out molecules
#: (thymine, phenyl acetate, acetanilide, methyl salicylate, aminopyridines,
#: 1-naphthol, stilbene) are left out on purpose so that the hold-out stays a test
#: of transfer.
ORGANICS_EXTRA: dict[str, str] = {
    # substituted benzenes and biaryls
    "benzyl_alcohol": "OCc1ccccc1",
    "benzylamine": "NCc1ccccc1",
    "acetophenone": "CC(=O)c1ccccc1",
    "benzamide": "NC(=O)c1ccccc1",
    "methyl_benzoate": "COC(=O)c1ccccc1",
    "catechol": "Oc1ccccc1O",
    "hydroquinone": "Oc1ccc(O)cc1",
    "4-nitrophenol": "[O-][N+](=O)c1ccc(O)cc1",
    "4-aminobenzoic_acid": "Nc1ccc(cc1)C(=O)O",
    "N,N-dimethylaniline": "CN(C)c1ccccc1",
    "phenylacetylene": "C#Cc1ccccc1",
    "biphenyl": "c1ccc(cc1)-c1ccccc1",
    "diphenyl_ether": "c1ccc(Oc2ccccc2)cc1",
    "benzophenone": "O=C(c1ccccc1)c1ccccc1",
    "benzaldehyde_oxime": "O/N=C/c1ccccc1",
    "1,4-benzoquinone": "O=C1C=CC(=O)C=C1",
    # fused rings
    "indane": "C1Cc2ccccc2C1",
    "indene": "C1C=Cc2ccccc12",
    "tetralin": "C1CCc2ccccc2C1",
    "azulene": "c1ccc2cccc2cc1",
    "benzofuran": "c1ccc2occc2c1",
    "benzimidazole": "c1ccc2[nH]cnc2c1",
    "benzoxazole": "c1ccc2ocnc2c1",
    "quinoxaline": "c1ccc2nccnc2c1",
    "purine": "c1ncc2[nH]cnc2n1",
    "adenine": "Nc1ncnc2[nH]cnc12",
    # heteroaromatics with several heteroatoms
    "pyridazine": "c1ccnnc1",
    "1,3,5-triazine": "c1ncncn1",
    "1,2,4-triazole": "c1nc[nH]n1",
    "1,2,3-triazole": "c1c[nH]nn1",
    "tetrazole": "c1nnn[nH]1",
    "isoxazole": "c1cnoc1",
    "1,3,4-oxadiazole": "c1nnco1",
    "nicotinamide": "NC(=O)c1cccnc1",
    # saturated and partly unsaturated rings
    "oxetane": "C1COC1",
    "tetrahydropyran": "C1CCOCC1",
    "1,3-dioxolane": "C1OCCO1",
    "pyrrolidine": "C1CCNC1",
    "piperazine": "C1CNCCN1",
    "2-pyrrolidinone": "O=C1CCCN1",
    "caprolactam": "O=C1CCCCCN1",
    "gamma-butyrolactone": "O=C1CCCO1",
    "succinic_anhydride": "O=C1CCC(=O)O1",
    "maleimide": "O=C1C=CC(=O)N1",
    "hydantoin": "O=C1CNC(=O)N1",
    "cyclopentanone": "O=C1CCCC1",
    "cyclohexene": "C1=CCCCC1",
    "cyclopentadiene": "C1=CCC=C1",
    # acyclic functional groups
    "diethyl_malonate": "CCOC(=O)CC(=O)OCC",
    "methyl_vinyl_ketone": "C=CC(C)=O",
    "methyl_acrylate": "C=CC(=O)OC",
    "vinyl_acetate": "C=COC(C)=O",
    "glycolic_acid": "OCC(=O)O",
    "oxalic_acid": "OC(=O)C(=O)O",
    "pyruvic_acid": "CC(=O)C(=O)O",
    "dimethyl_carbonate": "COC(=O)OC",
    "methyl_carbamate": "COC(N)=O",
    "acetone_oxime": "CC(C)=NO",
    "nitroethane": "CC[N+](=O)[O-]",
    "azomethane": "C/N=N/C",
    "guanidine": "NC(N)=N",
    "dimethylacetamide": "CN(C)C(C)=O",
    "ethanolamine": "NCCO",
    "ethylenediamine": "NCCN",
    "1,2-dimethoxyethane": "COCCOC",
    "tert-butanol": "CC(C)(C)O",
    # amino acids
    "valine": "CC(C)C(N)C(=O)O",
    "threonine": "CC(O)C(N)C(=O)O",
    "asparagine": "NC(=O)CC(N)C(=O)O",
    "glutamine": "NC(=O)CCC(N)C(=O)O",
    "aspartic_acid": "OC(=O)CC(N)C(=O)O",
    "phenylalanine": "NC(Cc1ccccc1)C(=O)O",
    "histidine": "NC(Cc1c[nH]cn1)C(=O)O",
}
