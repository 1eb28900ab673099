"""Model tests (pure PyTorch, CPU)."""
