"""The report's one error type."""


class ReportError(ValueError):
    """A run that cannot be reported; the message names the folder, file, model kind or setting at fault."""
