"""Image grids, loading, checks and preprocessing."""
