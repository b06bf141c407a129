"""`edgecv check`: load a model file you do not trust in a child process with a memory cap and time limits."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from edgecv.cli.common import out, run_guarded
from edgecv.cli.specflags import SpecFlags, spec_flags
from edgecv.core.errors import EdgecvError
from edgecv.core.fsutil import require_file


@spec_flags
def check_cmd(
    model: Path = typer.Argument(..., help="An ONNX file to check before an app loads it."),
    memory_mb: int = typer.Option(2048, "--memory-mb", help="Memory cap of the checking process, in MiB."),
    timeout: float = typer.Option(60.0, "--timeout", help="Seconds the one inference may take."),
    load_timeout: float = typer.Option(120.0, "--load-timeout",
                                       help="Seconds the checking process may take to start and load the model."),
    provider: str = typer.Option("cpu", "--provider", help="cpu | cuda | tensorrt | openvino."),
    *,
    flags: SpecFlags,
) -> None:
    """Check a model file you do not trust: load it and classify one blank image in a separate process with a memory cap
    and time limits (one for starting and loading, one for the inference), so a crash, a runaway allocation or a hang
    cannot harm this one. Prints ok and the classes, or one line naming what went wrong (exit code 2). In an app,
    edgecv.IsolatedPredictor keeps serving a model that way.

    Example: edgecv check downloaded.onnx --memory-mb 1024
    """

    def body() -> None:
        from edgecv.serve.isolated import check_model

        require_file(model, "a model file", EdgecvError)
        result = check_model(model, memory_mb=memory_mb or None, timeout_s=timeout, load_timeout_s=load_timeout,
                             provider=provider, facts=flags.stated())
        shown = ", ".join(result.labels[:10]) + (", ..." if len(result.labels) > 10 else "")
        out.print(f"[green]ok[/] {escape(str(model))}: loads within {load_timeout:g} s and runs on {result.provider} "
                  f"within {memory_mb} MiB and {timeout:g} s; {len(result.labels)} classes ({escape(shown)})",
                  soft_wrap=True)

    run_guarded(body)
