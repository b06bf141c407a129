"""The `edgecv` command: one small module per command, each a thin wrapper over a library function."""

from __future__ import annotations

import typer

from edgecv import __version__
from edgecv.cli.bench import bench_cmd
from edgecv.cli.check import check_cmd
from edgecv.cli.eval import eval_cmd
from edgecv.cli.explain import explain_cmd
from edgecv.cli.export import export_cmd
from edgecv.cli.pipeline import pipeline_cmd
from edgecv.cli.predict import predict_cmd
from edgecv.cli.profile import profile_cmd
from edgecv.cli.quantize import quantize_cmd
from edgecv.cli.report import report_cmd
from edgecv.cli.train import train_cmd
from edgecv.cli.zoo import datasets_cmd, models_cmd, summary_cmd

app = typer.Typer(
    name="edgecv",
    help="Train image classifiers, export and quantise them, and measure every variant.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"edgecv {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", "-V", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """Train image classifiers, export and quantise them, and measure every variant.

    Errors print one line and exit with code 2; set EDGECV_DEBUG=1 for the traceback.
    """


app.command("pipeline")(pipeline_cmd)
app.command("train")(train_cmd)
app.command("export")(export_cmd)
app.command("quantize")(quantize_cmd)
app.command("eval")(eval_cmd)
app.command("bench")(bench_cmd)
app.command("profile")(profile_cmd)
app.command("report")(report_cmd)
app.command("explain")(explain_cmd)
app.command("predict")(predict_cmd)
app.command("check")(check_cmd)
app.command("models")(models_cmd)
app.command("datasets")(datasets_cmd)
app.command("summary")(summary_cmd)


def main() -> None:
    """Console-script entry point."""
    app()
