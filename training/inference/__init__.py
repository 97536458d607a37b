"""Using a trained run: prediction (and later evaluation and export)."""
