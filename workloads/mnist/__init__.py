"""MNIST-style digit classification: Ray Data preprocessing, Ray Train CNN, gated promotion, Ray Serve."""
