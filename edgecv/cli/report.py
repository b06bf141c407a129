"""`edgecv report`: a run's or a study's page, written again from its files."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from edgecv.cli.common import DATA_ROOT, TRUST_CODE, StatusLine, out, run_guarded
from edgecv.core.errors import EdgecvError
from edgecv.rundir import STUDY_FILE


def report_cmd(
    run_dir: Path = typer.Argument(..., help="A run directory with bench.json, or a study folder with study.json "
                                             "(edgecv pipeline makes both)."),
    samples: int = typer.Option(24, "--samples", help="Random test images in the samples grid."),
    data_root: Path = DATA_ROOT,
    trust_code: bool = TRUST_CODE,
) -> None:
    """Write RUN_DIR/report.html (self-contained: figures inline, nothing fetched), report.md and plots/*.png:
    summary, training curves, variants and the accuracy-latency Pareto front, per-class changes, confusion
    matrices, calibration, sample predictions, Grad-CAM and feature maps, environment.

    A study folder gets the study report: every model and format in one table and one Pareto front.

    Example: edgecv report runs/demo
    """

    def body() -> None:
        from edgecv.report.run import build_report
        from edgecv.report.study import build_study_report

        if samples < 1:
            raise EdgecvError(f"--samples must be at least 1, got {samples}")
        with StatusLine("writing the report") as status:
            if (run_dir / STUDY_FILE).is_file():
                built = build_study_report(run_dir)
            else:
                built = build_report(run_dir, data_root=str(data_root) if data_root else None, samples=samples,
                                     progress=status.update, trust_code=trust_code)
        out.print(f"[green]wrote[/] {escape(str(built.html))} and {escape(built.markdown.name)} "
                  f"({built.figures} figures in {escape(str(built.html.parent / 'plots'))})", soft_wrap=True)

    run_guarded(body)
