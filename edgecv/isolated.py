"""Running a model you do not trust without risking the app that runs it.

A model file is data, but ONNX Runtime is native code: a hostile or broken graph can make it crash, hang or
ask for all the memory there is. :class:`IsolatedPredictor` runs a :class:`~edgecv.Predictor` in a child
process with a memory cap and a time limit per call. Images are decoded there too (Pillow is native code as
well). A crash, a timeout or the memory cap ends only the child: the call raises :class:`RuntimeFault` (a
:class:`~edgecv.errors.ModelError`) and the next call starts a fresh child. :func:`check_model` loads a file
that way once, runs one image through it and says what went wrong, if anything: what ``edgecv check`` does.

What it does not protect against: a child runs with the app's user, files and network, so a runtime bug that
lets a model run code would run it there; use an OS sandbox (a container, a separate user) for that.
"""

from __future__ import annotations

import multiprocessing
import signal
import threading
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from edgecv.errors import EdgecvError, InvalidImageError, ModelError

MEMORY_MB = 2048  # default address-space cap of the child
TIMEOUT_S = 60.0  # default limit per call, loading included


class RuntimeFault(ModelError):
    """The model's runtime process crashed, ran out of its memory cap, or overran its time limit."""


def _serve(conn: Connection, path: str, kwargs: dict[str, Any], memory_mb: int | None) -> None:
    """The child: cap memory, open the Predictor, answer requests until the pipe closes."""
    if memory_mb:
        import resource  # POSIX: the cap is what makes a runaway allocation fail in the child alone

        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C belongs to the app, which then closes the pipe
    try:
        from edgecv.predictor import Predictor

        predictor = Predictor(path, **kwargs)
    except (EdgecvError, MemoryError, ValueError) as exc:
        conn.send(("error", _kind(exc), _text(exc)))
        return
    conn.send(("ready", {"labels": predictor.labels, "spec": predictor.spec.to_json(), "top_k": predictor.top_k,
                         "provider": predictor.provider}, None))
    while True:
        try:
            method, arg = conn.recv()
        except (EOFError, OSError):
            return
        try:
            result = predictor.predict(arg) if method == "predict" else predictor.predict_batch(arg)
        except (EdgecvError, MemoryError, ValueError) as exc:
            conn.send(("error", _kind(exc), _text(exc)))
        except Exception as exc:  # noqa: BLE001 - ONNX Runtime's own error types, say a failed allocation
            conn.send(("error", "runtime", _text(exc)))
        else:
            conn.send(("ok", result, None))


def _kind(exc: BaseException) -> str:
    if isinstance(exc, InvalidImageError):
        return "image"
    if isinstance(exc, MemoryError):
        return "memory"
    return "model" if isinstance(exc, EdgecvError) else "runtime"


def _text(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@dataclass
class _Child:
    process: Any
    conn: Connection


class IsolatedPredictor:
    """A :class:`~edgecv.Predictor` in a child process: same ``predict`` and ``predict_batch``, but a model
    that crashes, hangs or exhausts memory raises :class:`RuntimeFault` instead of taking the app down.

    ``memory_mb`` caps the child's address space (None: no cap); ``timeout_s`` limits each call, and the
    first call's wait for the model to load. Calls are serialised; one child serves them all. Use it as a
    context manager, or call :meth:`close`.
    """

    def __init__(self, model_path: str | Path, *, memory_mb: int | None = MEMORY_MB,
                 timeout_s: float = TIMEOUT_S, **predictor_kwargs: Any) -> None:
        self.path = Path(model_path)
        self.memory_mb, self.timeout_s, self.kwargs = memory_mb, timeout_s, predictor_kwargs
        self._lock = threading.Lock()
        self._child: _Child | None = None
        self.info: dict[str, Any] = {}
        self.restarts = 0
        with self._lock:
            self._start()

    @property
    def labels(self) -> list[str]:
        return list(self.info["labels"])

    @property
    def pid(self) -> int | None:
        """The child's process id (None between a fault and the next call)."""
        return self._child.process.pid if self._child else None

    def predict(self, image: Any):
        """Classify one image in the child; see :meth:`edgecv.Predictor.predict`."""
        return self._call("predict", image)

    def predict_batch(self, images: list[Any]):
        """Classify several images in the child; see :meth:`edgecv.Predictor.predict_batch`."""
        return self._call("predict_batch", list(images))

    def close(self) -> None:
        with self._lock:
            self._stop()

    def __enter__(self) -> IsolatedPredictor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        child = getattr(self, "_child", None)
        if child is not None:
            child.process.kill()

    def _start(self) -> None:
        ctx = multiprocessing.get_context("spawn")  # no fork of the app's threads and sessions
        parent, child_end = ctx.Pipe()
        process = ctx.Process(target=_serve, args=(child_end, str(self.path), self.kwargs, self.memory_mb),
                              daemon=True, name=f"edgecv model {self.path.name}")
        process.start()
        child_end.close()
        self._child = _Child(process, parent)
        status, payload, message = self._receive("loading")
        if status != "ready":
            self._stop()
            raise _error(payload, message, self.path)
        self.info = payload

    def _stop(self) -> None:
        if self._child is None:
            return
        child, self._child = self._child, None
        child.conn.close()
        child.process.join(timeout=2)
        if child.process.is_alive():
            child.process.kill()
            child.process.join()

    def _receive(self, what: str) -> tuple[str, Any, Any]:
        child = self._child
        assert child is not None
        try:
            if child.conn.poll(self.timeout_s):
                return child.conn.recv()
        except (EOFError, OSError):
            pass
        else:
            child.process.kill()
            child.process.join()
            self._child = None
            raise RuntimeFault(f"{self.path.name}: {what} took longer than {self.timeout_s:g} s; its process was "
                               "stopped")
        child.process.join(timeout=5)
        code = child.process.exitcode
        self._child = None
        how = f"signal {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit code {code}"
        raise RuntimeFault(f"{self.path.name}: the model's runtime process died while {what} ({how}); the app "
                           "is unaffected and the next call starts a new one")

    def _call(self, method: str, arg: Any):
        with self._lock:
            if self._child is None:
                self.restarts += 1
                self._start()
            try:
                self._child.conn.send((method, arg))
            except (OSError, ValueError):  # the child died while idle
                self._stop()
                self.restarts += 1
                self._start()
                self._child.conn.send((method, arg))
            status, payload, message = self._receive("predicting")
            if status == "ok":
                return payload
            raise _error(payload, message, self.path)


def _error(kind: str, message: str, path: Path) -> EdgecvError:
    if kind == "image":
        return InvalidImageError(message)
    if kind in ("memory", "runtime"):
        return RuntimeFault(f"{path.name}: the runtime failed: {message}")
    return ModelError(message)


@dataclass
class CheckResult:
    """What :func:`check_model` found: the model ran one input in a child process within the limits."""

    path: str
    labels: list[str]
    provider: str
    label: str  # the top class for a blank image: a smoke test, not a measure of accuracy


def check_model(path: str | Path, *, memory_mb: int | None = MEMORY_MB, timeout_s: float = TIMEOUT_S,
                provider: str = "cpu", **predictor_kwargs: Any) -> CheckResult:
    """Load ``path`` in a child process with a memory cap and a time limit and classify one blank image at the
    model's size; raise a :class:`ModelError` (or :class:`RuntimeFault`) naming what went wrong.
    ``predictor_kwargs`` are the Predictor's (``labels=``, ``mean=``, ... for a file without a spec)."""
    import numpy as np

    path = Path(path)
    with IsolatedPredictor(path, memory_mb=memory_mb, timeout_s=timeout_s, provider=provider,
                           **predictor_kwargs) as isolated:
        from edgecv.spec import ModelSpec

        spec = ModelSpec.from_json(isolated.info["spec"])
        h, w = spec.size
        blank = np.zeros((h, w) if spec.input_shape[0] == 1 else (h, w, 3), np.uint8)
        prediction = isolated.predict(blank)
        return CheckResult(str(path), isolated.labels, isolated.info["provider"], prediction.label)


__all__ = ["CheckResult", "IsolatedPredictor", "RuntimeFault", "check_model"]

