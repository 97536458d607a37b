"""predict.py's runtime for the saved_model format: TensorFlow (`pip install tensorflow`).

Everything below the paste line goes into predict.py.
"""

from pathlib import Path


# --- paste ---
def load_model(folder: Path):
    """Returns a function: float32 images (1, size, size, 3) -> probabilities (1, classes)."""
    import tensorflow as tf

    signature = tf.saved_model.load(str(folder / "saved_model")).signatures["serving_default"]
    (input_name,) = signature.structured_input_signature[1]  # keyword-only, named after the input

    def predict(batch):
        (output,) = signature(**{input_name: tf.constant(batch)}).values()
        return output.numpy()

    return predict
