"""The one error type of the data package."""
from __future__ import annotations


class DataError(ValueError):
    """A data source or data setting that cannot be used; the message names the path, field or value."""
