"""Kubernetes resource quantities (part of the Kubernetes API server test double).

Parses the documented ``resource.Quantity`` serialisation: plain and decimal numbers, exponent forms (``1e3``),
binary suffixes (Ki Mi Gi Ti Pi Ei), decimal suffixes (n u m k M G T P E). Values are returned as ``float`` in base
units (cores for cpu, bytes for memory). Simplification: no canonicalisation back to a string form.
"""

from __future__ import annotations

import re

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": 1e-9, "u": 1e-6, "m": 1e-3, "": 1.0, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}
_PATTERN = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E))?$")


def parse_quantity(value) -> float:
    """Return the quantity in base units; raises ValueError for a malformed quantity."""
    if isinstance(value, bool):
        raise ValueError(f"quantities must match the regular expression: {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    match = _PATTERN.match(text)
    if not match:
        raise ValueError(
            f"quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': {value!r}"
        )
    number, exponent, suffix = match.groups()
    result = float(number)
    if exponent:
        result *= 10 ** int(exponent[1:])
    elif suffix:
        result *= _BINARY.get(suffix) or _DECIMAL[suffix]
    return result


def format_cpu(cores: float) -> str:
    """Render cpu cores the way resourceFieldRef exposes them (whole cores, rounded up)."""
    import math

    return str(max(1, math.ceil(cores)))
