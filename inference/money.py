"""USD amounts: the precision costs are kept at and how they are shown."""

from __future__ import annotations

from decimal import Decimal

USD_QUANTUM = Decimal("1e-10")


def format_usd(value: Decimal) -> str:
    """Plain decimal notation without trailing zeros (``"0.000012"``)."""
    text = format(value.quantize(USD_QUANTUM), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"
