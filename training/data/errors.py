"""The error every data problem raises, below everything that finds or reads images, and
the signal a data check gives when its caller stops it."""


class DataError(ValueError):
    """The data folder cannot be used as it is; the message says why and what to do."""


class CheckStopped(Exception):
    """A data check was stopped by its caller (a newer folder, a closed window); not a
    problem of the data."""
