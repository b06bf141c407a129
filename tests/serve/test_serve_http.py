"""Load: the HTTP example under 16 concurrent keep-alive clients sending 500 requests each, and one Predictor
shared by 16 threads. No errors, answers equal to a sequential run, and server memory that stops growing."""

from __future__ import annotations

import http.client
import io
import json
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, cli_env
from PIL import Image

from edgecv import Predictor
from edgecv.core.errors import InvalidImageError
from edgecv.data import load_dataset

CLIENTS = 16


REQUESTS = 500


@pytest.fixture(scope="module")
def model(lenet_onnx) -> Path:
    return lenet_onnx


@pytest.fixture(scope="module")
def bodies() -> list[bytes]:
    """64 digits as PNG files, and 4 bodies that are not images."""
    digits = load_dataset("digits", 8).test.x[:64, 0]
    out = []
    for img in digits:
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="PNG")
        out.append(buf.getvalue())
    return out + [b"", b"not an image", b"\x89PNG\r\n\x1a\n" + b"\0" * 40, out[0][:60]]


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.slow  # make test-all
def test_http_example_under_16_clients_times_500_requests(model, bodies):
    expected = []
    local = Predictor(model, top_k=3)
    for body in bodies:
        try:
            r = local.predict(body)
            expected.append((200, {"label": r.label, "score": r.score, "topk": [list(t) for t in r.topk]}))
        except InvalidImageError:
            expected.append((400, None))
    expected = [(411, None) if not b else e for b, e in zip(bodies, expected, strict=True)]
    server = subprocess.Popen([sys.executable, str(ROOT / "examples" / "serve_http.py"), str(model), "--port", "0"],
                              env=cli_env(), stdout=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline().rsplit(":", 1)[-1])
        rss: list[int] = []
        lock = threading.Lock()
        done = [0]

        def client(k: int) -> list[str]:
            problems = []
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            for i in range(REQUESTS):
                j = (k * 7 + i) % len(bodies)
                conn.request("POST", "/predict", body=bodies[j], headers={"Content-Length": str(len(bodies[j]))})
                response = conn.getresponse()
                payload = json.loads(response.read())
                status, want = expected[j]
                if response.status != status or (want is not None and payload != want):
                    problems.append(f"client {k} request {i}: {response.status} {payload}")
                if response.getheader("Connection", "").lower() == "close" or response.will_close:
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                with lock:
                    done[0] += 1
                    if done[0] % 1000 == 0:
                        rss.append(_rss_kib(server.pid))
            conn.close()
            return problems

        with ThreadPoolExecutor(CLIENTS) as pool:
            problems = [p for ps in pool.map(client, range(CLIENTS)) for p in ps]
        assert not problems, problems[:5]
        assert done[0] == CLIENTS * REQUESTS and len(rss) == 8
        # warmed up after the first 2,000 requests: the last 6,000 may not grow the server by more than 8 MiB
        assert rss[-1] - rss[1] < 8 * 1024, rss
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_one_predictor_shared_by_16_threads_agrees_with_a_sequential_run(model):
    predictor = Predictor(model)
    at_size = load_dataset("digits", 32).test.x[:, 0]
    small = load_dataset("digits", 8).test.x[:, 0]
    images: list = []
    for i in range(300):
        kind = i % 5
        images.append(at_size[i % len(at_size)] if kind == 0 else small[i % len(small)] if kind == 1
                      else np.zeros((3, 3, 7), np.uint8) if kind == 2 else Image.fromarray(small[i % len(small)])
                      if kind == 3 else np.float32(1.0))

    def answer(img):
        try:
            return predictor.predict(img)
        except InvalidImageError as exc:
            return str(exc)

    sequential = [answer(img) for img in images]
    assert sum(isinstance(a, str) for a in sequential) == 120
    barrier = threading.Barrier(16)

    def worker(shift: int):
        barrier.wait()
        order = images[shift:] + images[:shift]  # every thread in a different order
        return [answer(img) for img in order]

    with ThreadPoolExecutor(16) as pool:
        for shift, result in zip(range(16), pool.map(worker, range(16)), strict=True):
            assert result == sequential[shift:] + sequential[:shift]
