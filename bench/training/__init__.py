"""Cross-site training benchmark: 1 rank, 2-rank sync DDP and 2-rank lowcomm over a delayed link; Flower."""
