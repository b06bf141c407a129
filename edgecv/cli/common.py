"""Shared CLI pieces: consoles, the error boundary and small parsers."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from edgecv.core.errors import EdgecvError
from edgecv.core.fsutil import write_bytes, write_json

if TYPE_CHECKING:
    from edgecv.runtimes import RuntimeOptions

out = Console(highlight=False)  # results: tables and summaries
err = Console(stderr=True, highlight=False)  # progress and errors

T = TypeVar("T")
TRAIN_EXTRAS = {"torch", "torchvision", "onnx", "onnxscript", "onnxslim", "matplotlib", "captum"}  # edgecv[train]


def debug() -> bool:
    """EDGECV_DEBUG=1 shows tracebacks instead of one-line errors."""
    return os.environ.get("EDGECV_DEBUG", "") not in ("", "0")


def run_guarded(fn: Callable[[], T], interrupt_hint: Callable[[], str] | None = None) -> T:
    """Call ``fn``; a user error becomes one line on stderr and its exit code, never a traceback."""
    try:
        return fn()
    except EdgecvError as exc:
        if debug():
            raise
        if getattr(exc, "quiet", False):  # someone else reports it (a distributed launcher)
            sys.exit(exc.exit_code)
        one_line = " ".join(part.strip() for part in str(exc).splitlines() if part.strip())
        err.print(f"[bold red]error:[/] {escape(one_line)}", soft_wrap=True)
        sys.exit(exc.exit_code)
    except ModuleNotFoundError as exc:
        if debug() or exc.name is None or exc.name.partition(".")[0] not in TRAIN_EXTRAS:
            raise
        hint = f"this command needs {exc.name.partition('.')[0]}, which the base install leaves out: " \
               "pip install 'edgecv[train]'"
        err.print(f"[bold red]error:[/] {escape(hint)}", soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        if debug():
            raise
        hint = interrupt_hint() if interrupt_hint else ""
        err.print(f"[yellow]interrupted[/]{escape(hint)}", soft_wrap=True)
        sys.exit(130)


class StatusLine:
    """A spinner line on stderr that work updates with its progress; silent when stderr is not a terminal."""

    def __init__(self, text: str) -> None:
        self._live = err.status(escape(text)) if err.is_terminal else None

    def __enter__(self) -> StatusLine:
        if self._live is not None:
            self._live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def update(self, message: str) -> None:
        if self._live is not None:
            self._live.update(escape(message))

    def stop(self) -> None:
        if self._live is not None:
            self._live.stop()


class ImageBar:
    """A progress bar of images done (count, rate, time) on stderr; silent when stderr is not a terminal.
    ``update(done, total)`` is the callback that evaluation and prediction report to."""

    def __init__(self, text: str) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._bar = Progress(TextColumn(escape(text)), BarColumn(), MofNCompleteColumn(),
                             TextColumn("images"), TimeElapsedColumn(),
                             console=err, transient=True, disable=not err.is_terminal)
        self._task = None

    def __enter__(self) -> ImageBar:
        self._bar.start()
        return self

    def __exit__(self, *exc) -> None:
        self._bar.stop()

    def update(self, done: int, total: int) -> None:
        if self._task is None:
            self._task = self._bar.add_task("images", total=total)
        self._bar.update(self._task, completed=done, total=total)


def fmt_count(n: int) -> str:
    """1234567 -> '1.23M'."""
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)


def print_wide(table: Any, width: int) -> None:
    """Print a rich table whole: a pipe or file gets at least ``width`` columns, not one squeezed to 80."""
    saved = out.width
    if not out.is_terminal:
        out.width = max(saved, width)
    try:
        out.print(table)
    finally:
        out.width = saved


def parse_labels(text: str | None) -> list[str] | None:
    """``--labels a,b,c``, or ``--labels @classes.txt`` (one name per line, blank lines skipped)."""
    if text is None:
        return None
    if text.startswith("@"):
        path = Path(text[1:]).expanduser()
        try:
            names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        except (OSError, UnicodeDecodeError) as exc:
            raise EdgecvError(f"--labels {text}: cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
        names = [n for n in names if n]
    else:
        names = [n.strip() for n in text.split(",")]
    if len(names) < 2 or not all(names):
        raise EdgecvError(f"--labels needs at least 2 non-empty class names, got {text!r}")
    return names


PROVIDER_HELP = ("cpu | cuda | tensorrt | openvino (ONNX Runtime's providers; torch files: cpu | cuda; "
                 "--runtime openvino: cpu | gpu | npu).")


RUNTIME_HELP = ("Engine for ONNX files: onnxruntime, or openvino (OpenVINO's own runtime, pip install "
                "'edgecv[openvino]').")


STREAM_HELP = ("Folder data: decode the images as they are scored instead of loading them all first [default: "
               "when the folder would take more than EDGECV_RESIDENT_MB, 1024].")


TRUST_HELP = ("Run TorchScript files that edgecv did not write for this user. TorchScript runs the code inside "
              "the file: pass this only for files from a source you trust.")


TRUST_CODE_HELP = ("Build a run's model from your own module (--model net.py:factory) although the file changed since "
                   "the run began. This runs that code as it is now.")


# Options several commands take, declared once (a command whose option means something else declares its own).
DATA_ROOT = typer.Option(None, "--data-root", help="Where torchvision data sets live.")
MODEL_DATA = typer.Option(None, "--data", help="Data set [default: the one the model was trained on].")
PROVIDER = typer.Option("cpu", "--provider", help=PROVIDER_HELP)
THREADS = typer.Option(None, "--threads", help="Intra-op threads [default: the runtime's].")
ALLOW_FALLBACK = typer.Option(False, "--allow-fallback",
                              help="Accept ONNX Runtime running on another provider than asked.")
TRUST = typer.Option(False, "--trust-torchscript", help=TRUST_HELP)
TRUST_CODE = typer.Option(False, "--trust-code", help=TRUST_CODE_HELP)
KEEP_GOING = typer.Option(False, "--keep-going",
                          help="Leave out a folder's unreadable images instead of refusing the folder.")
STREAM = typer.Option(None, "--stream/--no-stream", help=STREAM_HELP)


def runtime_options(provider: str, threads: int | None, allow_fallback: bool, graph_opt: str = "all",
                     cudnn: str = "exhaustive", trt_fp16: bool = False, trt_cache: Path | None = None,
                     trust: bool = False, trust_code: bool = False) -> RuntimeOptions:
    """The runtime options the eval and bench flags ask for."""
    from edgecv.runtimes import RuntimeOptions  # numpy: not at start-up

    return RuntimeOptions(provider=provider, threads=threads, allow_fallback=allow_fallback,
                          graph_optimization=graph_opt, cudnn_algo_search=cudnn, trt_fp16=trt_fp16,
                          trt_cache=str(trt_cache) if trt_cache else None, trust_torchscript=trust,
                          trust_code=trust_code)


def save_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; an unwritable path is a one-line error."""
    try:
        write_bytes(path, data)
    except OSError as exc:
        raise EdgecvError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def write_report(path: Path, data: dict) -> None:
    """Write a JSON report atomically and say where; an unwritable path is a one-line error."""
    try:
        write_json(path, data)
    except OSError as exc:
        raise EdgecvError(f"cannot write {path}: {exc.strerror or exc}") from None
    out.print(f"[green]wrote[/] {escape(str(path))}", soft_wrap=True)
