"""The run layer's one error type, and the checks that turn a results file's JSON into typed fields."""
from __future__ import annotations

from typing import Any


class RunError(ValueError):
    """A run that cannot be read, reloaded or reported; the message names the folder, file, field, model kind or
    setting at fault."""


MISSING: Any = object()
"""Marks a field without a default in :func:`need`."""


def mapping(value: Any, where: str) -> dict[str, Any]:
    """``value`` when it is a JSON object.

    Args:
        value: a parsed JSON value.
        where: the file and field it came from (``"results/x/summary.json: models.ae"``), for the message.
    Returns:
        ``value`` itself.
    Raises:
        RunError: ``value`` is not a JSON object (names ``where`` and what it is instead).
    """
    if not isinstance(value, dict):
        raise RunError(f"{where}: expected a JSON object, got {type(value).__name__}")
    return value


def need(d: dict[str, Any], key: str, types: type | tuple[type, ...], where: str, default: Any = MISSING) -> Any:
    """One field of a JSON object, type-checked; JSON ``null`` counts as absent.

    Args:
        d: the JSON object.
        key: the field's name.
        types: the accepted Python types (``int`` also accepts nothing but ints: a ``bool`` is refused).
        where: the file and object it is in, for the message.
        default: the value when the field is absent or null; without one the field is required.
    Returns:
        The field's value, or ``default``.
    Raises:
        RunError: the field is required and absent, or of another type (names ``where``, the field and the type).
    """
    value = d.get(key)
    if value is None:
        if default is MISSING:
            raise RunError(f"{where}: field {key!r} is missing")
        return default
    types = types if isinstance(types, tuple) else (types,)
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        names = " or ".join(t.__name__ for t in types)
        raise RunError(f"{where}: field {key!r} should be {names}, got {type(value).__name__} {value!r:.60}")
    return value


NUMBER = (int, float)
"""The JSON number types."""
