"""Training: CLIP pretraining on the procedural world, PMP training (single process or torchrun/DDP)."""
