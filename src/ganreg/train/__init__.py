"""Training: the step context losses read from, the loop, checkpoints."""
