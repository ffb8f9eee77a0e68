"""Training, scaling laws (DiaSL) and active learning (ACRe) for eformer models.

Modules: :mod:`.data` (ASE databases -> labelled graphs), :mod:`.loss`,
:mod:`.loop` (the trainer), :mod:`.datagen` (reference labelling).
"""
