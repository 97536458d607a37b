"""Scripts that run outside this app; never imported by it.

``predict.py`` (with one ``runtime_<format>.py`` pasted into it) becomes each export folder's
``predict.py``; ``keras_check.py`` is the script the Keras check runs in a separate Python.
They may import only the standard library, numpy, Pillow and the one runtime.
"""
