"""Table cells in words and units, the same in the terminal, report.html and the study page. Torch-free."""

from __future__ import annotations

from typing import Any


def with_interval(value: float, ci: list[float] | None, fmt: str = "{:.3f}") -> str:
    """``value (low-high)`` for a table cell; just the value when no interval was measured."""
    return fmt.format(value) + (f" ({fmt.format(ci[0])}-{fmt.format(ci[1])})" if ci else "")


def paired_text(metrics: dict[str, Any]) -> str:
    """McNemar's test against the reference in words: "same answers" or "differs on k, p=..."."""
    p = metrics.get("paired")
    if not p:
        return "-"
    if not p["differs_on"]:
        return "same answers"
    return f"differs on {p['differs_on']}, p={p['p_value']:.2g}"


def fmt_bytes(n: int) -> str:
    """1430009 -> '1.4 MB'."""
    for unit, scale in (("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"
