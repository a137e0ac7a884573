"""The preprocessing cache as torch data: which subjects it serves and their float16 batches."""
