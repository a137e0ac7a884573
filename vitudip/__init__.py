"""ViT-UDIP: unsupervised deep imaging phenotypes from a 3-D ViT autoencoder, and their genetics."""

__version__ = "0.1.0"
