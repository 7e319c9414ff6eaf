"""Training a run: the loop with checkpoints, resume and its per-epoch log (`loop`)."""
