"""Running a model you do not trust without risking the app that runs it.

A model file is data, but ONNX Runtime is native code: a hostile or broken graph can make it crash, hang or ask for all
the memory there is. :class:`IsolatedPredictor` runs a :class:`~edgecv.Predictor` in a child process with a memory cap,
a time limit for starting and loading, and one per call. Images are decoded there too (Pillow is native code as well). A
crash, a timeout or the memory cap ends only the child: the call raises :class:`RuntimeFault` (a
:class:`~edgecv.core.errors.ModelError`) and the next call starts a fresh child. :func:`check_model` loads a file that
way once, runs one image through it and says what went wrong, if anything: what ``edgecv check`` does.

What it does not protect against: a child runs with the app's user, files and network, so a runtime bug that
lets a model run code would run it there; use an OS sandbox (a container, a separate user) for that.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from edgecv.core.errors import EdgecvError, InvalidImageError, ModelError
from edgecv.core.spec import ModelSpec

MEMORY_MB = 2048  # default address-space cap of the child
TIMEOUT_S = 60.0  # default limit per call
LOAD_TIMEOUT_S = 120.0  # default limit for the child's start (interpreter, imports) and the model's loading


class RuntimeFault(ModelError):
    """The model's runtime process crashed, ran out of its memory cap, or overran its time limit."""


# The child. It is started with `python -m edgecv.serve.isolated READ_FD WRITE_FD MEMORY_MB`, not forked or spawned
# from the app, so nothing of the app (its __main__, threads or sessions) runs or is copied there. Requests
# come pickled from the app, which the child trusts; replies go back as JSON, because the app must not
# unpickle anything from a process that runs an untrusted model.

def _child_main(argv: list[str]) -> None:
    read_fd, write_fd, memory_mb = int(argv[0]), int(argv[1]), int(argv[2])
    if memory_mb:
        import resource

        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C belongs to the app, which then closes the pipes
    inbox, outbox = Connection(read_fd, writable=False), Connection(write_fd, readable=False)
    path, kwargs = pickle.loads(inbox.recv_bytes())

    def reply(**fields: Any) -> None:
        outbox.send_bytes(json.dumps(fields).encode())

    try:
        from edgecv.serve.predictor import Predictor

        predictor = Predictor(path, **kwargs)
    except (EdgecvError, MemoryError, ValueError) as exc:
        return reply(status="error", kind=_kind(exc), message=_text(exc))
    reply(status="ready", labels=predictor.labels, spec=predictor.spec.to_json(), provider=predictor.provider)
    while True:
        try:
            method, arg = pickle.loads(inbox.recv_bytes())
        except (EOFError, OSError):
            return
        try:
            result = [predictor.predict(arg)] if method == "predict" else predictor.predict_batch(arg)
        except (EdgecvError, MemoryError, ValueError) as exc:
            reply(status="error", kind=_kind(exc), message=_text(exc))
        except Exception as exc:  # noqa: BLE001 - ONNX Runtime's own error types, say a failed allocation
            reply(status="error", kind="runtime", message=_text(exc))
        else:
            reply(status="ok", predictions=[[p.label, p.index, p.score, p.topk] for p in result])


def _kind(exc: BaseException) -> str:
    if isinstance(exc, InvalidImageError):
        return "image"
    if isinstance(exc, MemoryError):
        return "memory"
    return "model" if isinstance(exc, EdgecvError) else "runtime"


def _text(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class _Child:
    """One child process and the two pipes to it."""

    def __init__(self, path: Path, kwargs: dict[str, Any], memory_mb: int | None) -> None:
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "edgecv.serve.isolated", str(to_child_r), str(from_child_w), str(memory_mb or 0)],
            pass_fds=(to_child_r, from_child_w), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True)  # a Ctrl-C in the app's terminal is the app's
        os.close(to_child_r)
        os.close(from_child_w)
        self.outbox, self.inbox = Connection(to_child_w, readable=False), Connection(from_child_r, writable=False)
        self.outbox.send_bytes(pickle.dumps((str(path), kwargs)))

    def close(self) -> None:
        self.outbox.close()
        self.inbox.close()
        try:
            self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class IsolatedPredictor:
    """A :class:`~edgecv.Predictor` in a child process: same ``predict`` and ``predict_batch``, but a model
    that crashes, hangs or exhausts memory raises :class:`RuntimeFault` instead of taking the app down.

    ``memory_mb`` caps the child's address space (None: no cap); ``timeout_s`` limits each call;
    ``load_timeout_s`` limits each start of a child: the interpreter, its imports and the model's loading,
    which on a slow board can take far longer than one inference. Calls are serialised; one child serves them
    all. Use it as a context manager, or call :meth:`close`.
    """

    def __init__(self, model_path: str | Path, *, memory_mb: int | None = MEMORY_MB,
                 timeout_s: float = TIMEOUT_S, load_timeout_s: float = LOAD_TIMEOUT_S,
                 **predictor_kwargs: Any) -> None:
        self.path = Path(model_path)
        self.memory_mb, self.kwargs = memory_mb, predictor_kwargs
        self.timeout_s, self.load_timeout_s = timeout_s, load_timeout_s
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
        return self._call("predict", image)[0]

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
        self._child = _Child(self.path, self.kwargs, self.memory_mb)
        reply = self._receive("loading", self.load_timeout_s)
        if reply["status"] != "ready":
            self._stop()
            raise _error(reply, self.path)
        self.info = reply

    def _stop(self) -> None:
        if self._child is not None:
            child, self._child = self._child, None
            child.close()

    def _receive(self, what: str, limit_s: float) -> dict[str, Any]:
        child = self._child
        assert child is not None
        try:
            if child.inbox.poll(limit_s):
                return json.loads(child.inbox.recv_bytes())
            timed_out = True
        except (EOFError, OSError, ValueError):  # the pipe closed: the child is gone
            timed_out = False
        if timed_out:
            child.process.kill()
        child.close()  # reaps it
        self._child = None
        if timed_out:
            raise RuntimeFault(f"{self.path.name}: {what} took longer than {limit_s:g} s; its process was "
                               "stopped")
        code = child.process.returncode
        how = f"signal {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit code {code}"
        raise RuntimeFault(f"{self.path.name}: the model's runtime process died during {what} ({how}); the app "
                           "is unaffected and the next call starts a new one")

    def _call(self, method: str, arg: Any) -> list[Any]:
        from edgecv.serve.predictor import Prediction

        request = pickle.dumps((method, arg))
        with self._lock:
            if self._child is not None and self._child.process.poll() is not None:
                self._stop()  # it died while idle
            if self._child is None:
                self.restarts += 1
                self._start()
            try:
                self._child.outbox.send_bytes(request)
            except OSError:
                pass  # it died just now: _receive says how
            reply = self._receive("the call", self.timeout_s)
        if reply["status"] != "ok":
            raise _error(reply, self.path)
        return [Prediction(label, index, score, [(name, p) for name, p in topk])
                for label, index, score, topk in reply["predictions"]]


def _error(reply: dict[str, Any], path: Path) -> EdgecvError:
    kind, message = reply.get("kind"), str(reply.get("message"))
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
                load_timeout_s: float = LOAD_TIMEOUT_S, provider: str = "cpu", **predictor_kwargs: Any) -> CheckResult:
    """Load ``path`` in a child process with a memory cap and time limits (``load_timeout_s`` for the start
    and loading, ``timeout_s`` for the one call) and classify one blank image at the model's size; raise a
    :class:`ModelError` (or :class:`RuntimeFault`) naming what went wrong. ``predictor_kwargs`` are the
    Predictor's (``labels=``, ``mean=``, ... for a file without a spec)."""
    import numpy as np

    path = Path(path)
    with IsolatedPredictor(path, memory_mb=memory_mb, timeout_s=timeout_s, load_timeout_s=load_timeout_s,
                           provider=provider, **predictor_kwargs) as isolated:
        spec = ModelSpec.from_json(isolated.info["spec"])
        h, w = spec.size
        blank = np.zeros((h, w) if spec.input_shape[0] == 1 else (h, w, 3), np.uint8)
        prediction = isolated.predict(blank)
        return CheckResult(str(path), isolated.labels, isolated.info["provider"], prediction.label)


__all__ = ["CheckResult", "IsolatedPredictor", "RuntimeFault", "check_model"]


if __name__ == "__main__":
    _child_main(sys.argv[1:])
