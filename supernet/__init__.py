"""A JAX weight-sharing supernet for neural architecture search."""
