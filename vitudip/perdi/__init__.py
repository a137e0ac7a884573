"""PerDI (perturbation-based decoder interpretation): which brain regions each UDIP dimension is about.

For each mapped dimension, every subject's latent is moved by +k SD along that
dimension and decoded; a voxel-wise paired t-test between the perturbed and
original reconstructions gives a brain map, which is ranked against the
Harvard-Oxford atlas.

Modules: :mod:`~vitudip.perdi.stats` (streaming paired t), :mod:`~vitudip.perdi.decode`
(perturbation and the batched decoder loop), :mod:`~vitudip.perdi.space` (cache grid →
input grid, NIfTI, atlas and template on the input grid), :mod:`~vitudip.perdi.regions`
(region ranking), :mod:`~vitudip.perdi.inputs` (subjects, latents, dimensions),
:mod:`~vitudip.perdi.settings` (the stage's settings) and :mod:`~vitudip.perdi.stage` (the stage as one call).
"""
