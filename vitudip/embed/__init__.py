"""Endophenotypes per subject: the ViT-UDIPs, a PCA baseline, and how well either carries known truth."""
