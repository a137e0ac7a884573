"""Training the ViT autoencoder on the preprocessing cache."""
