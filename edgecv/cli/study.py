"""The end of a study in the terminal: every model x format row, the Pareto front across them, the constraint
answer and the report's path."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from edgecv.cli.common import err, out, print_wide
from edgecv.report.cells import fmt_bytes, paired_text, with_interval


def print_answer(answer) -> None:
    """The constraint answer, or nothing when no constraint was given."""
    if answer is None:
        return
    label = "[bold green]answer:[/]" if answer.met else "[bold yellow]no row meets the constraints:[/]"
    out.print(f"{label} {escape(answer.text)}", soft_wrap=True)


def print_study(result) -> None:
    """One table of every model and format sorted by p50, the front marked, then the answer and the report."""
    from edgecv.workflow.study import study_rows

    pairs = study_rows(result.outcomes)
    front = set(result.front)
    answer_row = result.answer.row if result.answer else None
    batch_cols = sorted({int(b) for _, v in pairs for b in v.throughput})
    table = Table(title=f"study: {len(result.outcomes)} models, {len(pairs)} rows")
    for col in ("model", "variant", "size", "p50 ms (95% CI)", *(f"img/s b{b}" for b in batch_cols), "memory",
                "accuracy (95% CI)", "vs its fp32", "ECE"):
        table.add_column(col, justify="left" if col in ("model", "variant") else "right", no_wrap=col == "variant")
    for model, v in sorted(pairs, key=lambda mv: mv[1].latency_ms.get("p50", float("inf"))):
        label = f"{model}: {v.name}"
        m, lat = v.metrics, v.latency_ms
        style = "bold" if label == answer_row else None
        table.add_row(
            escape(model), escape(v.name + (" *" if label in front else "")), fmt_bytes(v.size_bytes),
            with_interval(lat["p50"], v.latency_ci_ms.get("p50")) if "p50" in lat else "-",
            *(f"{v.throughput[str(b)]:,.0f}" if str(b) in v.throughput else "-" for b in batch_cols),
            fmt_bytes(v.memory["model_bytes"]) if (v.memory or {}).get("model_bytes") else "-",
            with_interval(100 * m["accuracy"], [100 * c for c in m["accuracy_ci"]] if m.get("accuracy_ci") else None,
                          "{:.1f}"),
            "reference" if v.name == "onnx fp32" else paired_text(m), f"{m['ece']:.4f}", style=style)
    for o in result.outcomes:
        if not o.ok:
            table.add_row(escape(o.model), escape(f"failed: {o.error}"), *[""] * (len(table.columns) - 2))
    print_wide(table, 180)
    out.print("* on the Pareto front across every model and format (faster means beyond noise: the whole 95% "
              "interval of the speed ratio at or above 1.05x)", soft_wrap=True)
    out.print(f"[bold]front:[/] {escape(', '.join(result.front) or 'none')}", soft_wrap=True)
    print_answer(result.answer)
    for o in result.outcomes:
        if not o.ok:
            err.print(f"[yellow]note:[/] {escape(o.model)} failed: {escape(o.error or '')}", soft_wrap=True)
    if result.report is not None:
        out.print(f"[bold]report:[/] {escape(str(result.report))}", soft_wrap=True)
