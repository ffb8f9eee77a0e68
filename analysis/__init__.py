"""Analysis with any ASE calculator: NVE drift, metadynamics, free energies, phonons.

This package imports ase, numpy and scipy only (never torch), so every tool here
works with EMT, LJ, GFN2-xTB or an eformer model alike.
"""
