"""The simulated cohort: brains with planted genetic effects, genotypes with realistic LD, and its truth."""
