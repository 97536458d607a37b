"""predict.py's runtime for the onnx format: ONNX Runtime (`pip install onnxruntime`). No TensorFlow needed.

Everything below the paste line goes into predict.py.
"""

from pathlib import Path


# --- paste ---
def load_model(folder: Path):
    """Returns a function: float32 images (1, size, size, 3) -> probabilities (1, classes)."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    (source,) = session.get_inputs()
    return lambda batch: session.run(None, {source.name: batch})[0]
