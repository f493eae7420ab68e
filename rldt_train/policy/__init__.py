"""Flow-matching policy: velocity networks, the Euler sampler, normalization, BC loss."""
