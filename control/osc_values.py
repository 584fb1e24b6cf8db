"""Coercing OSC arguments the way DAWs and control surfaces send them.

Numbers may arrive as int, float, bool (T/F) or a numeric string; booleans as T/F, a
number (0 = off) or "on"/"off"/"true"/"false". Anything else is a type error whose
message says what was expected.
"""

from __future__ import annotations

import math
from typing import Any


class OscTypeError(ValueError):
    """An argument of the wrong type; the message names what was expected."""


def _kind(value: Any) -> str:
    return {bool: "bool", int: "int", float: "float", str: "string", bytes: "blob"}.get(
        type(value), type(value).__name__
    )


def to_float(value: Any) -> float:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        result = float(value)
    elif isinstance(value, str):
        try:
            result = float(value.strip())
        except ValueError:
            raise OscTypeError(f"expected a number, got string {value!r}") from None
    else:
        raise OscTypeError(f"expected a number, got {_kind(value)}")
    if not math.isfinite(result):
        raise OscTypeError(f"expected a finite number, got {result}")
    return result


INT_RANGE = (-(2**31), 2**31 - 1)
"""Integers accepted: OSC's 32-bit 'i' range."""


def to_int(value: Any) -> int:
    result = int(round(to_float(value)))
    lo, hi = INT_RANGE
    if not lo <= result <= hi:
        raise OscTypeError(f"expected a 32-bit integer, got {result}")
    return result


def to_bool(value: Any) -> bool:
    if isinstance(value, str):
        word = value.strip().lower()
        if word in ("on", "true", "yes", "1"):
            return True
        if word in ("off", "false", "no", "0"):
            return False
        raise OscTypeError(f"expected on/off, got string {value!r}")
    return to_float(value) >= 0.5


def to_str(value: Any) -> str:
    if not isinstance(value, str):
        raise OscTypeError(f"expected a string, got {_kind(value)}")
    return value
