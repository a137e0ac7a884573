"""Stability across training runs: a second model trained with another seed, compared with the first (linear CKA
of the two embeddings, and the share of loci both runs find)."""
