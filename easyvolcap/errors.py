"""The one exception type for expected faults: bad input, missing weights, unwritable outputs."""

__all__ = ["EvcError"]


class EvcError(Exception):
    """An expected fault; the CLI prints its message as one line and exits non-zero."""
