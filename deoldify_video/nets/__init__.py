"""Network architectures, the model registry and weight loading."""
