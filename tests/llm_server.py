"""A fake OpenAI-compatible HTTP server on loopback, for tests of agent frameworks.

It answers ``/v1/chat/completions`` (plain and streamed), ``/v1/responses`` (plain and
streamed), ``/v1/embeddings`` and ``/v1/models`` with fixed, well-formed replies, so real
clients (openai, praisonaiagents, openai-agents, pydantic-ai, mem0, crewai) run end to end
with no network and no API key. HTTP/1.1 keep-alive, so client connection pools are real.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FakeLLM", "fake_llm"]

EMBEDDING_DIMS = 8


def _embedding(text: str, dims: int) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [(b - 128) / 128 for b in digest[:dims]]


class FakeLLM:
    """The running server: ``base_url`` ends in ``/v1``; ``requests`` counts by path."""

    def __init__(self, reply: str = "ok", delay: float = 0.0) -> None:
        self.reply = reply
        self.delay = delay
        self.requests: dict[str, int] = {}
        self.bodies: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

            def _send_json(self, obj: Any, status: int = 200) -> None:
                body = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _send_sse(self, events: list[Any]) -> None:
                chunks = b"".join(
                    (b"data: " + (e if isinstance(e, bytes) else json.dumps(e).encode())
                     + b"\n\n") for e in events)
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Content-Length", str(len(chunks)))
                self.end_headers()
                self.wfile.write(chunks)

            def do_GET(self) -> None:
                server._count(self.path)
                if self.path.rstrip("/").endswith("/models"):
                    self._send_json({"object": "list", "data": [
                        {"id": "fake-model", "object": "model", "created": 0,
                         "owned_by": "test"}]})
                else:
                    self._send_json({"ok": True})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {}
                server._count(self.path, body)
                if server.delay:
                    time.sleep(server.delay)
                path = self.path.split("?", 1)[0].rstrip("/")
                model = body.get("model", "fake-model")
                if path.endswith("/chat/completions"):
                    if body.get("stream"):
                        self._send_sse([*server.chat_chunks(model), b"[DONE]"])
                    else:
                        self._send_json(server.chat_completion(model))
                elif path.endswith("/responses"):
                    if body.get("stream"):
                        self._send_sse_events(server.response_events(model))
                    else:
                        self._send_json(server.response(model))
                elif path.endswith("/embeddings"):
                    inputs = body.get("input", "")
                    inputs = [inputs] if isinstance(inputs, str) else list(inputs)
                    dims = int(body.get("dimensions") or EMBEDDING_DIMS)
                    self._send_json({"object": "list", "model": model, "data": [
                        {"object": "embedding", "index": i,
                         "embedding": _embedding(str(t), dims)}
                        for i, t in enumerate(inputs)],
                        "usage": {"prompt_tokens": 1, "total_tokens": 1}})
                else:
                    self._send_json({"error": {"message": "not found"}}, 404)

            def _send_sse_events(self, events: list[dict[str, Any]]) -> None:
                chunks = b"".join(
                    f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Content-Length", str(len(chunks)))
                self.end_headers()
                self.wfile.write(chunks)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="fake-llm")

    def _count(self, path: str, body: Any = None) -> None:
        with self._lock:
            key = path.split("?", 1)[0]
            self.requests[key] = self.requests.get(key, 0) + 1
            if body is not None:
                self.bodies.append(body)

    def total(self, suffix: str) -> int:
        with self._lock:
            return sum(n for p, n in self.requests.items() if p.rstrip("/").endswith(suffix))

    # -- replies --------------------------------------------------------------------------

    def chat_completion(self, model: str) -> dict[str, Any]:
        return {"id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
                "model": model, "choices": [{"index": 0, "finish_reason": "stop",
                                             "message": {"role": "assistant",
                                                         "content": self.reply}}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}}

    def chat_chunks(self, model: str) -> list[Any]:
        base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk",
                "created": int(time.time()), "model": model}
        return [
            {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                  "finish_reason": None}]},
            {**base, "choices": [{"index": 0, "delta": {"content": self.reply},
                                  "finish_reason": None}]},
            {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
             "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}},
        ]

    def _message_item(self) -> dict[str, Any]:
        return {"id": "msg_fake", "type": "message", "role": "assistant", "status": "completed",
                "content": [{"type": "output_text", "text": self.reply, "annotations": []}]}

    def response(self, model: str) -> dict[str, Any]:
        return {"id": "resp_fake", "object": "response", "created_at": int(time.time()),
                "status": "completed", "model": model, "output": [self._message_item()],
                "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
                "usage": {"input_tokens": 5, "output_tokens": 1, "total_tokens": 6,
                          "input_tokens_details": {"cached_tokens": 0},
                          "output_tokens_details": {"reasoning_tokens": 0}}}

    def response_events(self, model: str) -> list[dict[str, Any]]:
        done = self.response(model)
        started = {**done, "status": "in_progress", "output": []}
        item = self._message_item()
        return [
            {"type": "response.created", "sequence_number": 0, "response": started},
            {"type": "response.output_item.added", "sequence_number": 1, "output_index": 0,
             "item": {**item, "status": "in_progress", "content": []}},
            {"type": "response.output_text.delta", "sequence_number": 2, "output_index": 0,
             "item_id": item["id"], "content_index": 0, "delta": self.reply, "logprobs": []},
            {"type": "response.output_item.done", "sequence_number": 3, "output_index": 0,
             "item": item},
            {"type": "response.completed", "sequence_number": 4, "response": done},
        ]

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> FakeLLM:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


@contextmanager
def fake_llm(reply: str = "ok", delay: float = 0.0) -> Iterator[FakeLLM]:
    """Run a ``FakeLLM`` for the block."""
    server = FakeLLM(reply, delay).start()
    try:
        yield server
    finally:
        server.stop()
