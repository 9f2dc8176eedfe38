"""A real OpenAI-compatible HTTP server on 127.0.0.1 that answers with a local Hugging Face model:
``/v1/chat/completions`` (generation) and ``/v1/completions`` with ``echo`` (prompt log-probabilities).
Used by the LLM operator tests and ``benchmarks/llm_ops.py``; it never listens beyond loopback."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from operators.llm.llm_backends import GenParams, TransformersBackend


class ChatServer:
    """A real OpenAI chat-completions server on 127.0.0.1 answering with the tiny model. It counts
    requests, fails the first ones with the queued HTTP statuses and records peak concurrency."""

    def __init__(self, model: str, delay_s: float = 0.0) -> None:
        self.model = model
        self.backend = TransformersBackend(model)
        self.delay = threading.Event()
        self.delay_s = delay_s
        self.fail_first: list[int] = []
        self.requests = self.in_flight = self.peak = 0
        self.lock, self.model_lock = threading.Lock(), threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests += 1
                    status = server.fail_first.pop(0) if server.fail_first else 200
                    server.in_flight += 1
                    server.peak = max(server.peak, server.in_flight)
                try:
                    answer = {"/v1/chat/completions": server.answer, "/v1/completions": server.echo}.get(self.path)
                    status = 404 if answer is None else status
                    server.delay.wait(server.delay_s)  # hold the request so concurrent ones overlap
                    error = {"error": {"message": f"HTTP {status} for {self.path}", "code": status}}
                    payload = answer(body) if status == 200 else error
                finally:
                    with server.lock:
                        server.in_flight -= 1
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def answer(self, body: dict) -> dict:
        params = GenParams(
            max_new_tokens=body.get("max_tokens", 16),
            temperature=body.get("temperature", 0.0),
            top_p=body.get("top_p", 1.0),
            seed=body.get("seed", 0),
        )
        with self.model_lock:
            text = self.backend.generate([body["messages"][-1]["content"]], params)[0]
        message = {"role": "assistant", "content": text}
        usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
        choice = {"index": 0, "message": message, "finish_reason": "stop"}
        return {
            "id": "c",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [choice],
            "usage": usage,
        }

    def echo(self, body: dict) -> dict:
        """A completions answer with ``echo``: every prompt token's log-probability and offset."""
        import torch

        prompt = body["prompt"] if isinstance(body["prompt"], str) else body["prompt"][0]
        tokenizer, model = self.backend.tokenizer, self.backend.model
        enc = tokenizer(prompt, add_special_tokens=False, return_offsets_mapping=True)
        ids = torch.tensor([enc.input_ids])
        with self.model_lock, torch.no_grad():
            logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
        token_logprobs = [None] + [float(logp[i, ids[0, i + 1]]) for i in range(ids.shape[1] - 1)]
        tokens = [prompt[start:end] for start, end in enc.offset_mapping]
        scored = {
            "tokens": tokens,
            "token_logprobs": token_logprobs,
            "top_logprobs": [None if lp is None else {t: lp} for t, lp in zip(tokens, token_logprobs, strict=True)],
            "text_offset": [start for start, _ in enc.offset_mapping],
        }
        choice = {"index": 0, "text": prompt, "logprobs": scored, "finish_reason": "length"}
        usage = {"prompt_tokens": len(tokens), "completion_tokens": 0, "total_tokens": len(tokens)}
        return {
            "id": "t",
            "object": "text_completion",
            "created": 0,
            "model": body["model"],
            "choices": [choice],
            "usage": usage,
        }

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
