"""QoE prediction (O-RAN SC AI/ML Framework use case): data, features, training, serving."""
