"""HTTP plumbing of the Workers AI emulator: a real local server speaking Cloudflare's API.

Routes
------
``POST /client/v4/accounts/{account_id}/ai/run/{model}``      the run endpoint
``POST /v1/{account_id}/{gateway_id}/workers-ai/{model}``       the AI Gateway form
``GET  /client/v4/accounts/{account_id}/ai/models/search``      model search
``GET  /client/v4/accounts/{account_id}/ai/models/schema``      ``?model=NAME``
``/_emulator/...``                                              control (no auth):
    ``health`` (GET), ``faults`` (GET/POST/DELETE), ``config`` (GET/POST),
    ``requests`` (GET), ``stats`` (GET), ``reset`` (POST)

Fault kinds and in-band markers are described in ``faults.py``.

Built on the standard library only (``ThreadingHTTPServer``) so that it starts in
milliseconds inside tests, the dev stack and benchmarks, and needs no Django: it is
the upstream double the whole suite talks to over real sockets.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import socketserver
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote

from inference.catalog import Task

from . import catalog_api
from .faults import DEFAULT_SLOW_MS, Fault, FaultKind, find_markers, parse_fault
from .outputs import InputError, OutputOptions, RunOutput, generate
from .state import EmulatorConfig, EmulatorState, make_extra_model

logger = logging.getLogger("inference.emulator")

RUN_RE = re.compile(r"^/client/v4/accounts/([^/]+)/ai/run/(.+)$")
GATEWAY_RE = re.compile(r"^/v1/([^/]+)/([^/]+)/workers-ai/(.+)$")
MODELS_RE = re.compile(r"^/client/v4/accounts/([^/]+)/ai/models/(search|schema)$")

ERROR_MESSAGES = {
    3003: "Bad input: request missing headers or body is not valid JSON",
    3036: "You have used up your daily free allocation of 10,000 neurons, please upgrade "
    "to Cloudflare's Workers Paid plan if you would like to continue usage.",
    3040: "Capacity temporarily exceeded, please try again.",
    3043: "Internal server error",
    5007: "No such model {model} or task",
    7000: "No route for that URI",
    10000: "Authentication error",
}

# Tasks whose single binary input may also be POSTed as a raw body (curl
# --data-binary), which Cloudflare accepts for these models.
RAW_BODY_FIELD = {
    Task.AUTOMATIC_SPEECH_RECOGNITION.value: "audio",
    Task.IMAGE_CLASSIFICATION.value: "image",
    Task.OBJECT_DETECTION.value: "image",
    Task.IMAGE_TO_TEXT.value: "image",
}

# How many token events a cut stream sends before the connection is closed.
CUT_STREAM_EVENTS = 3


def error_envelope(code: int, message: str) -> dict[str, Any]:
    return {"success": False, "errors": [{"code": code, "message": message}], "messages": [], "result": None}


def success_envelope(result: Any) -> dict[str, Any]:
    return {"result": result, "success": True, "errors": [], "messages": []}


def _json_bytes(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Benchmarks open 50+ connections at once; the stdlib default backlog of 5 would
    # make the kernel refuse (or SYN-retry for a second) the excess.
    request_queue_size = 1024
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], state: EmulatorState) -> None:
        self.state = state
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a reverse DNS lookup that can
        # stall for seconds on machines without network; the name is never used.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = port

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Cut kept-alive connections: a stopped upstream must look stopped to pools."""
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up (timeouts, cut streams) are routine here, not tracebacks.
        logger.debug("emulator connection error from %s", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: benchmarks reuse pooled connections
    server_version = "cfai-workers-ai-emulator/1.0"
    timeout = 300  # idle keep-alive connections free their thread eventually
    server: _Server

    # ------------------------------------------------------------------ plumbing

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    @property
    def state(self) -> EmulatorState:
        return self.server.state

    def _dispatch(self, method: str) -> None:
        try:
            body = self._read_body()
            path, _, query = self.path.partition("?")
            params = dict(parse_qsl(query, keep_blank_values=True))
            if path.startswith("/_emulator/"):
                self._control(method, path[len("/_emulator/") :].strip("/"), params, body)
            elif match := GATEWAY_RE.match(path):
                if method != "POST":
                    return self._send_error(404, 7000, ERROR_MESSAGES[7000])
                self._run(match.group(1), match.group(3), body, gateway_id=unquote(match.group(2)))
            elif match := RUN_RE.match(path):
                if method != "POST":
                    return self._send_error(400, 7000, ERROR_MESSAGES[7000])
                self._run(match.group(1), match.group(2), body, gateway_id=None)
            elif (match := MODELS_RE.match(path)) and method == "GET":
                self._models(unquote(match.group(1)), match.group(2), params)
            else:
                # Cloudflare answers unknown routes with 400/7000, not 404.
                status = 400 if path.startswith("/client/v4/") else 404
                self._send_error(status, 7000, ERROR_MESSAGES[7000])
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True
        except _BadRequestBody as exc:
            self.close_connection = True
            self._send_error(400, 3003, str(exc))

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size_line = self.rfile.readline(1024)
                try:
                    size = int(size_line.split(b";")[0].strip() or b"0", 16)
                except ValueError:
                    raise _BadRequestBody("malformed chunked body") from None
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(8)
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise _BadRequestBody("invalid Content-Length") from None
        return self.rfile.read(length) if length > 0 else b""

    def _send_bytes(self, status: int, body: bytes, content_type: str, headers: Mapping[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _send_json(self, status: int, data: Any, headers: Mapping[str, str] | None = None) -> None:
        self._send_bytes(status, _json_bytes(data), "application/json", headers)

    def _send_error(self, status: int, code: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        self._send_json(status, error_envelope(code, message), headers)

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    # ------------------------------------------------------------------ run endpoint

    def _run(self, raw_account: str, raw_model: str, body: bytes, *, gateway_id: str | None) -> None:
        account_id = unquote(raw_account)
        extra_headers: dict[str, str] = {}
        if gateway_id is not None:
            # AI Gateway adds these to every answer it proxies.
            extra_headers = {"cf-aig-cache-status": "MISS", "cf-aig-log-id": uuid.uuid4().hex}
        epoch = self.state.epoch()

        def record(status: int | None, model: str, *, auth: str | None, stream: bool = False,
                   fault: str | None = None) -> None:
            self.state.record(model=model, account_id=account_id, gateway_id=gateway_id, auth=auth,
                              status=status, stream=stream, fault=fault, body=body, epoch=epoch)

        # Cloudflare's router rejects an encoded slash before anything else (the
        # cloudflare SDK 5.x encodes model names this way and gets exactly this error).
        if "%2f" in raw_model.lower():
            record(400, unquote(raw_model), auth=None)
            return self._send_error(400, 7000, ERROR_MESSAGES[7000], extra_headers)
        model = unquote(raw_model)

        auth = self.state.authenticate(self.headers)
        if auth is None or not self.state.account_allowed(account_id):
            record(401, model, auth=auth)
            return self._send_error(401, 10000, ERROR_MESSAGES[10000], extra_headers)

        spec = self.state.lookup(model)
        if spec is None:
            record(400, model, auth=auth)
            return self._send_error(400, 5007, ERROR_MESSAGES[5007].format(model=model), extra_headers)

        payload = self._parse_payload(body, str(spec.task))
        if payload is None:
            record(400, model, auth=auth)
            return self._send_error(400, 3003, ERROR_MESSAGES[3003], extra_headers)
        stream = payload.get("stream") is True and str(spec.task) == Task.TEXT_GENERATION.value

        config = self.state.config
        fault = self.state.markers.fault_for(find_markers(payload)) or self.state.faults.take(model)
        fault_name = fault.kind.value if fault else None
        if config.latency_ms:
            time.sleep(config.latency_ms / 1000)

        if fault is not None and fault.kind != FaultKind.SLOW and fault.kind != FaultKind.CUT_STREAM:
            return self._answer_fault(fault, model, extra_headers,
                                      lambda status: record(status, model, auth=auth, stream=stream, fault=fault_name))
        if fault is not None and fault.kind == FaultKind.SLOW:
            time.sleep((fault.delay_ms if fault.delay_ms is not None else DEFAULT_SLOW_MS) / 1000)

        try:
            output = generate(spec, payload, OutputOptions(image_noise=config.image_noise))
        except InputError as exc:
            record(exc.status, model, auth=auth, stream=stream, fault=fault_name)
            return self._send_error(exc.status, exc.code, exc.message, extra_headers)

        record(200, model, auth=auth, stream=stream, fault=fault_name)
        cut = fault is not None and fault.kind == FaultKind.CUT_STREAM
        if stream:
            return self._stream(output, config.token_delay_ms, extra_headers, cut=cut)
        if output.body is not None:
            data, content_type = output.body, output.content_type
        else:
            data, content_type = _json_bytes(success_envelope(output.result)), "application/json"
        if cut:
            return self._send_truncated(data, content_type, extra_headers)
        self._send_bytes(200, data, content_type, extra_headers)

    def _parse_payload(self, body: bytes, task: str) -> dict[str, Any] | None:
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            content_type = (self.headers.get("Content-Type") or "").lower()
            field = RAW_BODY_FIELD.get(task)
            if body and field and "json" not in content_type:
                return {field: body}
            return None
        return payload if isinstance(payload, dict) else None

    def _answer_fault(self, fault: Fault, model: str, headers: dict[str, str], record: Any) -> None:
        headers = dict(headers)
        if fault.kind == FaultKind.DROP:
            record(None)
            # No status line at all: the client sees the peer closing the connection.
            self.close_connection = True
            return None
        if fault.kind == FaultKind.INVALID_JSON:
            record(200)
            return self._send_bytes(200, b'{"result": {"response": "unterminated', "application/json", headers)
        if fault.retry_after is not None:
            retry_after = fault.retry_after
            headers["Retry-After"] = str(int(retry_after)) if retry_after == int(retry_after) else str(retry_after)
        if fault.kind == FaultKind.RATE_LIMITED:
            record(429)
            return self._send_error(429, 3040, ERROR_MESSAGES[3040], headers)
        if fault.kind == FaultKind.DAILY_LIMIT:
            record(429)
            return self._send_error(429, 3036, ERROR_MESSAGES[3036], headers)
        record(500)
        return self._send_error(500, 3043, ERROR_MESSAGES[3043], headers)

    def _send_truncated(self, data: bytes, content_type: str, headers: Mapping[str, str]) -> None:
        """Announce the full length, send half, hang up: a body cut mid-transfer."""
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data[: max(1, len(data) // 2)])
        self.wfile.flush()

    def _stream(self, output: RunOutput, token_delay_ms: int, headers: Mapping[str, str], *, cut: bool) -> None:
        """Server-sent events exactly as Workers AI sends them, one flushed chunk per event."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.flush()
        tokens = output.tokens
        limit = min(CUT_STREAM_EVENTS, max(1, len(tokens) - 1)) if cut else len(tokens)
        for index, token in enumerate(tokens[:limit]):
            if index and token_delay_ms:
                time.sleep(token_delay_ms / 1000)
            # "p" is Cloudflare's random padding against token-length side channels.
            padding = uuid.uuid4().hex[: 1 + (index * 7) % 24]
            self._write_chunk(b"data: " + _json_bytes({"response": token, "p": padding}) + b"\n\n")
        if cut:
            # No usage event, no [DONE], no terminating chunk: the connection just ends.
            self.close_connection = True
            return
        if token_delay_ms:
            time.sleep(token_delay_ms / 1000)
        self._write_chunk(b"data: " + _json_bytes({"response": "", "usage": output.usage}) + b"\n\n")
        self._write_chunk(b"data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    # ------------------------------------------------------------------ catalog

    def _models(self, account_id: str, what: str, params: Mapping[str, str]) -> None:
        if self.state.authenticate(self.headers) is None or not self.state.account_allowed(account_id):
            return self._send_error(401, 10000, ERROR_MESSAGES[10000])
        models = {m.name: m for m in catalog_api.catalog_models()}
        models.update(self.state.config.models)
        if what == "search":
            items, info = catalog_api.search(models.values(), params)
            envelope = success_envelope(items)
            envelope["result_info"] = info
            return self._send_json(200, envelope)
        name = params.get("model") or ""
        spec = self.state.lookup(name)
        if spec is None:
            return self._send_error(400, 5007, ERROR_MESSAGES[5007].format(model=name))
        self._send_json(200, success_envelope(catalog_api.schema(spec)))

    # ------------------------------------------------------------------ control

    def _control(self, method: str, name: str, params: Mapping[str, str], body: bytes) -> None:
        state = self.state
        try:
            data = json.loads(body) if body.strip() else {}
        except ValueError:
            return self._send_json(400, {"error": "body is not JSON"})
        try:
            if name == "health" and method == "GET":
                return self._send_json(200, {"ok": True})
            if name == "faults" and method == "GET":
                return self._send_json(200, {"faults": state.faults.pending()})
            if name == "faults" and method == "DELETE":
                state.faults.clear()
                return self._send_json(200, {"faults": []})
            if name == "faults" and method == "POST":
                faults = data.get("faults") if isinstance(data, dict) else None
                if not isinstance(faults, list):
                    raise ValueError('expected {"faults": [...]}')
                for fault in [parse_fault(f) for f in faults]:
                    state.faults.add(fault)
                return self._send_json(200, {"faults": state.faults.pending()})
            if name == "config" and method == "GET":
                return self._send_json(200, state.config.to_dict())
            if name == "config" and method == "POST":
                if not isinstance(data, dict):
                    raise ValueError("expected a JSON object")
                return self._send_json(200, state.update_config(data))
            if name == "requests" and method == "GET":
                return self._send_json(200, state.requests())
            if name == "stats" and method == "GET":
                return self._send_json(200, state.stats())
            if name == "reset" and method == "POST":
                state.reset()
                return self._send_json(200, {"ok": True})
        except ValueError as exc:
            return self._send_json(400, {"error": str(exc)})
        self._send_json(404, {"error": f"no control endpoint {method} /_emulator/{name}"})


class _BadRequestBody(Exception):
    pass


class EmulatorServer:
    """The Workers AI emulator: ``EmulatorServer().start()``, then point clients at ``base_url``.

    ``tokens``: accepted Bearer tokens (None: any non-empty token).
    ``legacy_credentials``: an accepted ``(email, key)`` pair for X-Auth-Email/X-Auth-Key
    (None: any pair while ``tokens`` is None too, otherwise none).
    ``account_ids``: accepted account ids (None: any).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        latency_ms: int = 0,
        tokens: Iterable[str] | None = None,
        legacy_credentials: tuple[str, str] | None = None,
        account_ids: Iterable[str] | None = None,
        *,
        token_delay_ms: int = 0,
        image_noise: bool = False,
        models: Mapping[str, str | Mapping[str, Any]] | None = None,
    ) -> None:
        config = EmulatorConfig(
            latency_ms=int(latency_ms),
            token_delay_ms=int(token_delay_ms),
            image_noise=bool(image_noise),
            models={name: make_extra_model(name, d) for name, d in (models or {}).items()},
        )
        self.state = EmulatorState(
            config=config, tokens=tokens, legacy_credentials=legacy_credentials, account_ids=account_ids
        )
        self.host = host
        self._port = int(port)
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> EmulatorServer:
        """Bind and serve in a daemon thread. After ``stop()`` it restarts on the same port."""
        if self._httpd is not None:
            return self
        self._httpd = _Server((self.host, self._port), self.state)
        self._port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
            name=f"workers-ai-emulator:{self._port}", daemon=True,
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until KeyboardInterrupt (for the CLI entry points)."""
        self.start()
        try:
            while self._thread is not None and self._thread.is_alive():
                self._thread.join(0.5)
        finally:
            self.stop()

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        httpd.close_connections()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        """Root URL of the server (control endpoints live under ``/_emulator/``)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._port}"

    @property
    def base_url(self) -> str:
        """Drop-in for ``https://api.cloudflare.com/client/v4``."""
        return f"{self.url}/client/v4"

    def gateway_url(self, account_id: str, gateway_id: str) -> str:
        """Drop-in for ``https://gateway.ai.cloudflare.com/v1/{account}/{gateway}/workers-ai``."""
        return f"{self.url}/v1/{account_id}/{gateway_id}/workers-ai"

    def run_url(self, account_id: str, model: str) -> str:
        return f"{self.base_url}/accounts/{account_id}/ai/run/{model}"

    # ------------------------------------------------------------------ Python API

    def add_fault(
        self,
        kind: str | FaultKind,
        model: str | None = None,
        count: int = 1,
        retry_after: float | None = None,
        delay_ms: int | None = None,
    ) -> None:
        """Queue a fault (FIFO) for the next ``count`` run requests matching ``model``."""
        self.state.faults.add(parse_fault(
            {"kind": str(kind), "model": model, "count": count, "retry_after": retry_after, "delay_ms": delay_ms}
        ))

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Same keys as ``POST /_emulator/config``: latency_ms, token_delay_ms, image_noise, models."""
        return self.state.update_config(changes)

    def register_model(self, name: str, task: str, output_kind: str | None = None) -> None:
        """Accept ``name`` (outside the catalog) as a model of ``task``."""
        definition: dict[str, Any] = {"task": task}
        if output_kind:
            definition["output_kind"] = output_kind
        self.state.update_config({"models": {name: definition}})

    @property
    def latency_ms(self) -> int:
        return self.state.config.latency_ms

    @latency_ms.setter
    def latency_ms(self, value: int) -> None:
        self.state.update_config({"latency_ms": value})

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Recorded run requests, oldest first (see ``GET /_emulator/requests``)."""
        return self.state.requests()

    @property
    def stats(self) -> dict[str, Any]:
        return self.state.stats()

    @property
    def pending_faults(self) -> list[dict[str, Any]]:
        return self.state.faults.pending()

    def reset(self) -> None:
        """Clear faults, markers, the request log and runtime config (back to the constructor's)."""
        self.state.reset()
