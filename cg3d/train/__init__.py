"""Training: pretraining, fine-tuning, distributed plumbing, checkpoints."""
