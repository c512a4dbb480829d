"""NoGAN training of the lite colorizer: data, phases and photo evaluation."""
