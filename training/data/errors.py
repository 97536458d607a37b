"""The error every data problem raises, below everything that finds or reads images."""


class DataError(ValueError):
    """The data folder cannot be used as it is; the message says why and what to do."""
