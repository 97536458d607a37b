"""The export's Keras check, run as ``python -I -c <this file's text> MODEL IMAGES OUT BLOCKED WARM_UP``
from an empty folder.

Loads MODEL with plain Keras (``safe_mode`` on, its default) in a Python where the packages
named in BLOCKED (this app's) cannot be imported, scores each image of IMAGES (a .npy of
uint8 NHWC images) on its own, and saves the probabilities and milliseconds per image to
OUT (.npz). Prints one JSON line: ``{"ok": true, ...}`` or ``{"ok": false, "error": ...}``.
"""

import json
import re
import sys
import time


def main(argv: list[str]) -> int:
    model_path, images_path, out_path, blocked, warm_up = argv
    for name in blocked.split(","):
        sys.modules[name] = None  # `import <name>` now raises ImportError
    try:
        import keras
        import numpy as np

        model = keras.saving.load_model(model_path, compile=False)
        images = np.load(images_path).astype("float32")
        for _ in range(int(warm_up)):
            model.predict_on_batch(images[:1])
        rows, times = [], []
        for image in images:
            start = time.perf_counter()
            rows.append(np.asarray(model.predict_on_batch(image[np.newaxis]))[0])
            times.append((time.perf_counter() - start) * 1000.0)
        np.savez(out_path, probabilities=np.stack(rows), milliseconds=np.asarray(times))
    except Exception as error:  # noqa: BLE001 - any failure is the answer, reported as JSON
        text = str(error).strip()
        # Keras wraps the reason in a long message; name the class it could not find, if any.
        missing = re.search(r"Could not locate class '[^']*'", text)
        reason = missing.group(0) if missing else (text.splitlines()[0] if text else "")
        print(json.dumps({"ok": False, "error": f"{type(error).__name__}: {reason[:400]}"}))
        return 1
    print(json.dumps({"ok": True, "keras": keras.__version__}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
