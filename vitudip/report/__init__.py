"""The study summary: each genomic risk locus with the brain regions its dimensions point at.

* :mod:`~vitudip.report.tables`: reading the stage inputs, one clear error per bad file; top PerDI regions.
* :mod:`~vitudip.report.summary`: merged loci → dimensions → top PerDI regions (``summary.tsv``).
* :mod:`~vitudip.report.truth`: the simulated demo scored against its planted regions (``truth.tsv``).
* :mod:`~vitudip.report.stage`: the ``report`` stage as one call.
"""
