"""sgtrain.latent"""
