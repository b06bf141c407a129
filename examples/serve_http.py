"""A small HTTP endpoint around edgecv's Predictor: POST an image, get the top-k classes as JSON.

    python examples/serve_http.py MODEL.onnx [--port 8000] [--max-bytes 10000000]
    curl --data-binary @digit.png http://127.0.0.1:8000/predict

One Predictor (one ONNX Runtime session) serves every request; requests run concurrently on threads, and
connections are kept alive (HTTP/1.1). Bodies over --max-bytes get 413, bodies that are not images or a
malformed Content-Length 400, unknown paths 404; a client silent for --timeout seconds is dropped, so a
stalled client cannot hold a thread forever. Base install only.
"""

from __future__ import annotations

import argparse
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from edgecv import InvalidImageError, Predictor


def make_handler(predictor: Predictor, max_bytes: int, timeout: float = 30.0) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: every reply carries its Content-Length

        def setup(self) -> None:
            self.timeout = timeout  # socket timeout for reads: a stalled client is dropped
            super().setup()

        def reply(self, status: int, payload: dict) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            if self.close_connection:
                self.send_header("Connection", "close")  # the client must not send more on this connection
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if self.path != "/":
                return self.reply(404, {"error": f"no route {self.path}; POST an image to /predict"})
            self.reply(200, {"model": predictor.spec.arch, "labels": predictor.labels})

        def do_POST(self) -> None:  # noqa: N802
            if self.path != "/predict":
                self.close_connection = True  # its body is not read: it must not be taken for a request
                return self.reply(404, {"error": f"no route {self.path}; POST an image to /predict"})
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                self.close_connection = True
                return self.reply(400, {"error": "Content-Length must be a whole number"})
            if length <= 0:
                self.close_connection = True
                return self.reply(411, {"error": "send the image as the request body, with a Content-Length"})
            if length > max_bytes:
                self.close_connection = True  # the unread body must not be taken for the next request
                return self.reply(413, {"error": f"image is {length} bytes, over the {max_bytes} byte limit"})
            try:
                result = predictor.predict(self.rfile.read(length))
            except InvalidImageError as exc:
                return self.reply(400, {"error": str(exc)})
            self.reply(200, {"label": result.label, "score": result.score, "topk": result.topk})

        def log_message(self, *args) -> None:  # keep the terminal quiet
            pass

    return Handler


class Server(ThreadingHTTPServer):
    """http.server's threading server with a listen backlog for many clients connecting at once (its default,
    5, makes a burst of new connections wait on the kernel's retries or fail)."""

    request_queue_size = 128


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    parser.add_argument("--max-bytes", type=int, default=10_000_000)
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds a client may stay silent")
    args = parser.parse_args()
    predictor = Predictor(args.model, top_k=args.top_k)
    server = Server((args.host, args.port), make_handler(predictor, args.max_bytes, args.timeout))
    print(f"listening on http://{args.host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
