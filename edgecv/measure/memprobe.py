"""A model's own memory and cold start, measured in a fresh process of its own.

A process that has imported torch, or loaded other variants, measures them too. So ``measure_isolated`` probes
each file in a process of its own, forked on Linux from a probe server that has imported the file's runtime
(:class:`ProbeServer`), elsewhere a new ``python -m edgecv.measure.memprobe``: it imports the runtime the file
needs, makes the input, notes its resident memory (the baseline), then times creating the session and the
first batch-1 inference, runs the largest batch too, and reports the peak resident memory of that work less
the baseline (Linux resets the peak through /proc/self/clear_refs). On CUDA it adds the device memory the
process holds (NVML, which includes the CUDA context). One JSON object comes back.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import gc
import importlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgecv.core.spec import ModelSpec
from edgecv.runtimes import RuntimeOptions, load_model, runtime_for  # imported before the baseline

TIMEOUT_S = 600
CLOSE_S = 10  # a server still importing when its caller ends has this long to see its stdin close
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_CHUNK = 2048  # pagemap entries read at a time (16 kB)
FORKS = sys.platform.startswith("linux")  # fork is safe and /proc resets the peak: the probe server


def _status(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Linux lets a process reset its peak resident memory (VmHWM) to the current one."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


def _peak() -> int | None:
    peak = _status("VmHWM")
    if peak is not None:
        return peak
    try:
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * (1 if sys.platform == "darwin" else 1024)
    except (ImportError, OSError):
        return None


def _device_bytes() -> int | None:
    """GPU memory this process holds, from NVML (nvidia-ml-py), or None where NVML is not installed."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
        total = 0
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            for proc in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
                if proc.pid == os.getpid() and proc.usedGpuMemory:
                    total += int(proc.usedGpuMemory)
        return total
    except Exception:  # NVML errors are informational here, never fatal
        return None


def need_of(path: Path, engine: str = "onnxruntime") -> str:
    """What a probe of ``path`` imports before its baseline: "onnxruntime", "openvino", "executorch" or "torch"."""
    kind = runtime_for(path)
    if kind == "onnxruntime":
        return "openvino" if engine == "openvino" else "onnxruntime"
    return kind if kind == "executorch" else "torch"


def _import_runtime(need: str) -> None:
    """Everything loading a model of this kind on this engine imports, so the baseline holds it and the model
    does not: before OpenVINO and ExecuTorch were imported here, their libraries counted as a 224x224 resnet18's
    (2-core AMD EPYC, Zen 3: OpenVINO 22 MB and 0.1-0.3 s, ExecuTorch 140 MB and 6-7 s of cold start)."""
    if need in ("onnxruntime", "openvino"):
        import onnxruntime  # noqa: F401

        if need == "openvino":
            _import_if_installed("openvino")
    elif need == "executorch":
        _import_if_installed("executorch.runtime")
    else:
        import torch  # noqa: F401

        import edgecv.models  # noqa: F401
        import edgecv.runtimes.torch_rt  # noqa: F401
        import edgecv.train.checkpoint  # noqa: F401


def _import_if_installed(module: str) -> None:
    """Import ``module`` when it is there; when it is not, loading the model says so in its own one line."""
    try:
        importlib.import_module(module)
    except ImportError:
        pass


def probe(request: dict[str, Any]) -> dict[str, Any]:
    """Measure one file as ``request`` says (see :func:`measure_isolated`); run in a fresh process."""
    path = Path(request["file"])
    _import_runtime(need_of(path, request["options"].get("runtime", "onnxruntime")))
    shape, dtype = tuple(request["input_shape"]), np.dtype(request["dtype"])
    rng = np.random.default_rng(0)
    first_batch, big_batch = int(request["batch"]), int(request["big_batch"])
    small = (rng.integers(0, 256, (first_batch, *shape)) if dtype == np.uint8
             else rng.standard_normal((first_batch, *shape))).astype(dtype)
    big = np.ascontiguousarray(np.resize(small, (big_batch, *shape)))
    gc.collect()
    baseline = _status("VmRSS")
    reset = _reset_peak()
    t0 = time.perf_counter()
    spec = ModelSpec.from_json(request["spec"]) if request.get("spec") else None
    loaded = load_model(path, RuntimeOptions(**request["options"]), spec)
    t1 = time.perf_counter()
    loaded.run(small)
    t2 = time.perf_counter()
    peak_first = _peak()
    device = _device_bytes() if loaded.provider in ("cuda", "tensorrt") else None
    loaded.run(big)
    peak_big = _peak()
    return {
        "load_ms": (t1 - t0) * 1e3, "first_run_ms": (t2 - t1) * 1e3, "baseline_bytes": baseline,
        "peak_bytes": peak_first, "model_bytes": peak_first - baseline if reset and baseline and peak_first else None,
        "big_batch": big_batch,
        "big_batch_bytes": peak_big - baseline if reset and baseline and peak_big else None,
        "device_bytes": device, "provider": loaded.provider, "pid": os.getpid(),
    }


def measure_isolated(path: Path, options: dict[str, Any], input_shape: tuple[int, ...], dtype: str, batch: int,
                     big_batch: int, timeout: float = TIMEOUT_S, spec_json: str | None = None,
                     fork: bool = FORKS) -> dict[str, Any]:
    """Memory and cold start of one model file, from a fresh process of its own: forked from the probe server
    (:class:`ProbeServer`) where ``fork`` (Linux), else a new ``python -m edgecv.measure.memprobe``.

    ``input_shape`` is one image in the file's layout; ``batch`` is the first (cold) inference's batch size and
    ``big_batch`` the largest one measured; ``spec_json`` is the spec the file runs with when it is not (or not
    only) its own. Raises RuntimeError with the probe's last error line on failure.
    """
    request = {"file": str(path), "options": options, "input_shape": list(input_shape), "dtype": dtype,
               "batch": batch, "big_batch": big_batch, "spec": spec_json}
    if not fork:
        return _in_new_interpreter(request, timeout)
    need = need_of(path, options.get("runtime", "onnxruntime"))
    answer = probe_server(need).ask(request, timeout)
    if "error" in answer:
        raise RuntimeError(f"the memory probe of {path.name} failed: {answer['error']}")
    return answer


def _in_new_interpreter(request: dict[str, Any], timeout: float) -> dict[str, Any]:
    name = Path(request["file"]).name
    try:
        proc = subprocess.run([sys.executable, "-m", "edgecv.measure.memprobe", json.dumps(request)],
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"the memory probe of {name} took over {timeout:.0f} s") from None
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
        raise RuntimeError(f"the memory probe of {name} failed: {lines[-1] if lines else proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


class ProbeServer:
    """A process that imports the runtimes once and forks a fresh child for every probe.

    Starting an interpreter and importing torch for each probe was most of bench's memory and cold-start time
    (2-core Intel Xeon: 1.8 s a torch or TorchScript file, against 0.2 s for the probe itself). A child forked
    from this server is as fresh as a new interpreter for what the probe measures: it holds no session and has
    run no inference, its baseline is taken after the runtime's import as before, and the session, its memory
    and its first run are all its own. The server never runs a model, so no runtime's thread pool exists when
    it forks. One JSON request per line in, one JSON answer per line out; the server ends when its stdin
    closes, so it never outlives the process that started it.
    """

    def __init__(self, need: str):
        self.need = need
        self._proc = subprocess.Popen([sys.executable, "-m", "edgecv.measure.memprobe", "--serve", need],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                      text=True, start_new_session=True)

    def alive(self) -> bool:
        return self._proc.poll() is None

    def ask(self, request: dict[str, Any], timeout: float) -> dict[str, Any]:
        """One probe's answer, or ``{"error": ...}``; past ``timeout`` the server and its child are killed."""
        name = Path(request["file"]).name
        assert self._proc.stdin is not None and self._proc.stdout is not None
        try:
            self._proc.stdin.write(json.dumps(request) + "\n")
            self._proc.stdin.flush()
        except OSError:
            return {"error": "the probe server has stopped"}
        ready, _, _ = select.select([self._proc.stdout], [], [], timeout)
        if not ready:
            self.close(kill=True)
            raise RuntimeError(f"the memory probe of {name} took over {timeout:.0f} s")
        line = self._proc.stdout.readline()
        if not line:
            self.close(kill=True)
            return {"error": "the probe server has stopped"}
        return json.loads(line)

    def close(self, kill: bool = False) -> None:
        """End the server: its stdin closes, and it is killed when ``kill`` or when it has not ended soon after."""
        if kill and self.alive():
            self._kill()
        for stream in (self._proc.stdin, self._proc.stdout):
            if stream is not None:
                stream.close()
        try:
            self._proc.wait(timeout=CLOSE_S)
        except subprocess.TimeoutExpired:
            self._kill()
            self._proc.wait()

    def _kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, signal.SIGKILL)  # the server's session: it and the child it forked


_servers: dict[str, ProbeServer] = {}


def probe_server(need: str) -> ProbeServer:
    """The running probe server for one runtime's files (see :func:`need_of`), started on first use. One server
    per runtime: a server that had imported torch too would hold the libraries the two share in every ONNX
    probe's baseline (1 MB less measured per ONNX file than from a fresh interpreter)."""
    server = _servers.get(need)
    if server is None or not server.alive():
        server = _servers[need] = ProbeServer(need)
    return server


def start_probe_servers(needs: set[str]) -> None:
    """Start the servers these probes will need now, so that their imports overlap the caller's own work."""
    if FORKS:
        for need in needs:
            probe_server(need)


@atexit.register
def _close_servers() -> None:
    for server in _servers.values():
        server.close()


def serve(need: str) -> int:
    """The probe server's loop (``python -m edgecv.measure.memprobe --serve NEED``)."""
    _import_runtime(need)
    resident = _resident_file_pages()
    for line in sys.stdin:
        print(json.dumps(_forked(json.loads(line), resident)), flush=True)
    return 0


def _resident_file_pages() -> list[tuple[int, int]]:
    """(address, pages) of each run of this process's resident pages of mapped files (the runtimes' libraries),
    from /proc/self/pagemap. Fork copies the page tables of anonymous memory only, so a forked child maps these
    again as it touches them, and would count the libraries' code as the model's memory. Read in small chunks:
    large temporary buffers would leave free memory in this process's heap that the child's model would reuse
    unmeasured."""
    runs: list[tuple[int, int]] = []
    with open("/proc/self/maps") as maps, open("/proc/self/pagemap", "rb", buffering=0) as pagemap:
        for line in maps:
            fields = line.split()
            if len(fields) < 6 or fields[4] == "0" or "r" not in fields[1] or not fields[5].startswith("/"):
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            for page in range(start // PAGE, end // PAGE, _CHUNK):
                pagemap.seek(page * 8)
                entries = pagemap.read(min(_CHUNK, end // PAGE - page) * 8)
                for i in np.flatnonzero(np.frombuffer(entries, np.uint64) >> 63).tolist():
                    address = (page + i) * PAGE
                    if runs and runs[-1][0] + runs[-1][1] * PAGE == address:
                        runs[-1] = (runs[-1][0], runs[-1][1] + 1)
                    else:
                        runs.append((address, 1))
    return runs


def _touch(runs: list[tuple[int, int]]) -> None:
    """Read one byte of every page of ``runs``, so this child maps what the server had mapped (30 ms for torch's
    308 MB), and its baseline holds the same pages a fresh interpreter's would after the same imports."""
    for address, pages in runs:
        int(np.ctypeslib.as_array((ctypes.c_ubyte * (pages * PAGE)).from_address(address))[::PAGE].sum())


def _forked(request: dict[str, Any], resident: list[tuple[int, int]]) -> dict[str, Any]:
    """``probe(request)`` in a child forked for it; its answer comes back through a pipe of its own."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: nothing it or a library prints may reach the server's answers
        os.close(read_end)
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        try:
            _touch(resident)
            answer = probe(request)
        except BaseException as exc:  # reported to the parent as one line
            answer = {"error": _one_line(exc)}
        os.write(write_end, json.dumps(answer).encode())
        os._exit(0)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 1 << 16):
        chunks.append(chunk)
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    if not chunks:
        return {"error": f"the probe process died ({_exit_reason(status)})"}
    return json.loads(b"".join(chunks))


def _exit_reason(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"


def _one_line(exc: BaseException) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first}"


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[1] == "--serve":
        return serve(argv[2])
    if len(argv) != 2:
        print("usage: python -m edgecv.measure.memprobe REQUEST_JSON | --serve NEED", file=sys.stderr)
        return 2
    try:
        result = probe(json.loads(argv[1]))
    except Exception as exc:  # reported to the parent as one line
        print(_one_line(exc), file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
