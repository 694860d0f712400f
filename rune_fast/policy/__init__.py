"""The policy layer: Cedar values and semantics, policy compilation, the authorizer."""
