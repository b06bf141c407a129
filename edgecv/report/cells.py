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


def end_to_end_split(e2e: dict[str, Any]) -> str:
    """A bench row's end-to-end entry in words: 'decode 1.48 + preprocess 1.70 + inference 3.15 + postprocess
    0.02 ms, p50 6.40 ms'."""
    parts = " + ".join(f"{stage} {ms:.2f}" for stage, ms in e2e["stages_ms"].items())
    return f"{parts} ms, p50 {e2e['p50_ms']:.2f} ms"


def end_to_end_table(variants: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Headers and rows for the variants bench timed end to end: the model's own p50 beside the app's path
    from JPEG bytes to the label, how many times the model's it is, and its stages."""
    timed = [v for v in variants if v.get("end_to_end") and "p50" in v["latency_ms"]]
    if not timed:
        return [], []
    stages = list(timed[0]["end_to_end"]["stages_ms"])
    headers = ["variant", "model p50 ms", "end to end p50 ms (95% CI)", "x model", *(f"{s} ms" for s in stages)]
    rows = [[v["name"], f"{v['latency_ms']['p50']:.3f}",
             with_interval(v["end_to_end"]["p50_ms"], v["end_to_end"].get("p50_ci_ms")),
             f"{v['end_to_end']['p50_ms'] / v['latency_ms']['p50']:.2f}x",
             *(f"{v['end_to_end']['stages_ms'][s]:.3f}" for s in stages)] for v in timed]
    return headers, rows
