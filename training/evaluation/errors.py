"""The evaluation's error type (kept apart so that light modules can name it)."""


class EvaluationError(ValueError):
    """The runs, images or --out cannot be used; the message says what to do. Nothing was written."""
