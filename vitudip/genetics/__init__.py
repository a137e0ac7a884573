"""Genome-wide association of the ViT-UDIPs: engines (in-process torch, plink2) and GWAS-SSF summary statistics."""
