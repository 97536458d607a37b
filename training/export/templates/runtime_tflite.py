"""predict.py's runtime for the tflite format: the LiteRT interpreter (`pip install ai-edge-litert`),
or TensorFlow's own copy of it where TensorFlow is installed. No TensorFlow needed.

Everything below the paste line goes into predict.py.
"""

from pathlib import Path


# --- paste ---
def load_model(folder: Path):
    """Returns a function: float32 images (1, size, size, 3) -> probabilities (1, classes)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            import tensorflow as tf
        except ImportError:
            raise ImportError("No module named 'ai_edge_litert': pip install ai-edge-litert") from None
        Interpreter = tf.lite.Interpreter  # noqa: N806 - the class, named as imported above
    interpreter = Interpreter(model_path=str(folder / "model.tflite"))
    interpreter.allocate_tensors()
    (source,) = interpreter.get_input_details()
    (target,) = interpreter.get_output_details()

    def predict(batch):
        interpreter.set_tensor(source["index"], batch)
        interpreter.invoke()
        return interpreter.get_tensor(target["index"]).copy()

    return predict
