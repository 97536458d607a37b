"""predict.py's runtime for the keras format: plain Keras 3 (`pip install keras tensorflow`).

Everything below the paste line goes into predict.py.
"""

from pathlib import Path

import numpy as np


# --- paste ---
def load_model(folder: Path):
    """Returns a function: float32 images (1, size, size, 3) -> probabilities (1, classes)."""
    import keras  # safe_mode (on by default) refuses files that would run code

    model = keras.saving.load_model(folder / "model.keras", compile=False)
    return lambda batch: np.asarray(model.predict_on_batch(batch))
