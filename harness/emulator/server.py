"""The embedded endpoint: moto's WSGI app behind the plane's middleware, on 127.0.0.1 only."""

from __future__ import annotations

import io
import ipaddress
import json
import threading
from datetime import datetime, timezone
from typing import Any, Callable, Iterable
from urllib.parse import parse_qs

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.datastructures import EnvironHeaders, Headers
from werkzeug.serving import BaseWSGIServer, make_server

from harness.emulator.motoadapter import account_for_access_key
from harness.emulator.plane import Exchange, Plane, access_key_of

_REASONS = {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 400: "Bad Request",
            403: "Forbidden", 404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error"}


class PlaneMiddleware:
    """Observes every call reaching moto and hands it to the plane; serves the calls moto cannot."""

    def __init__(self, app: Callable, plane: Plane):
        self.app = app
        self.plane = plane

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        path, query = environ.get("PATH_INFO", ""), environ.get("QUERY_STRING", "")
        if path in ("/_gameday/guardduty-finding", "/_gameday/inspector-finding") and \
                environ.get("REQUEST_METHOD") == "POST":
            return self._detected(path, query, start_response)
        if path.startswith("/_gameday/"):
            return self._internal(environ.get("REQUEST_METHOD", "GET"), path, query, start_response)
        body = _read_body(environ)
        environ["wsgi.input"] = io.BytesIO(body)
        headers = Headers(EnvironHeaders(environ))
        key = access_key_of(headers)
        before = self.plane.trails_now(key)
        method = environ.get("REQUEST_METHOD", "GET")
        served = self.plane.intercept(method, path, headers, body, query)
        if served is not None:
            status, out_headers, out_body = served
            start_response(f"{status} {_REASONS.get(status, 'OK')}", list(out_headers.items()))
        else:
            captured: dict[str, Any] = {}

            def capture(status_line: str, response_headers: list, exc_info: Any = None) -> Any:
                captured["status"], captured["headers"] = status_line, response_headers
                return start_response(status_line, response_headers, exc_info)

            chunks = self.app(environ, capture)
            try:
                out_body = b"".join(chunks)
            finally:
                if hasattr(chunks, "close"):
                    chunks.close()
            status = int(captured["status"].split(" ", 1)[0])
            out_headers = dict(captured["headers"])
        self.plane.observe(Exchange(
            method=method, path=path, query=query, headers=headers, body=body,
            status=status, response_headers=Headers(list(out_headers.items())), response_body=out_body,
            remote_addr=environ.get("REMOTE_ADDR", "127.0.0.1"), at=datetime.now(timezone.utc),
            trails_before=before, trails_after=self.plane.trails_now(key),
        ))
        return [out_body]

    def _internal(self, method: str, path: str, query: str, start_response: Callable) -> Iterable[bytes]:
        if path in _SIMULATIONS:
            return self._simulate(method, path, parse_qs(query), start_response)
        if path == "/_gameday/health":
            body = {"status": "ok", "recorded": self.plane.recorded, "failures": self.plane.failures[-20:]}
        elif path == "/_gameday/lambda-errors":
            body = {"errors": self.plane.lambda_errors()}
        elif path == "/_gameday/outbox":
            # What SNS sent an endpoint outside AWS (address, phone, URL), for a harness in another process.
            endpoint = parse_qs(query).get("endpoint", [""])[0]
            body = {"endpoint": endpoint, "messages": self.plane.sns.outbox(endpoint)}
        else:
            start_response("404 Not Found", [("Content-Type", "application/json")])
            return [b'{"error": "unknown gameday path"}']
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(body).encode()]

    def _detected(self, path: str, query: str, start_response: Callable) -> Iterable[bytes]:
        """Test hooks: a GuardDuty or Inspector finding as if the service had detected it (null if it is off)."""
        args = {k: v[0] for k, v in parse_qs(query).items()}
        account = args.get("account") or account_for_access_key(None)
        region = args.get("region") or "us-east-1"
        try:
            if path == "/_gameday/guardduty-finding":
                finding = self.plane.findings.raise_finding(account, region, args.get("type", ""),
                                                            instance_id=args.get("instance"),
                                                            access_key_id=args.get("access_key"))
            else:
                finding = self.plane.inspector.report(account, region, instance_id=args.get("instance", ""),
                                                      cve=args.get("cve") or "CVE-2021-44228",
                                                      severity=args.get("severity") or "HIGH",
                                                      package=args.get("package") or "openssl",
                                                      version=args.get("version") or "1.0.2k")
            status, body = "200 OK", {"finding": finding}
        except ValueError as exc:
            status, body = "400 Bad Request", {"error": str(exc)}
        except LookupError as exc:
            status, body = "404 Not Found", {"error": str(exc)}
        start_response(status, [("Content-Type", "application/json")])
        return [json.dumps(body).encode()]

    def _simulate(self, method: str, path: str, query: dict, start_response: Callable) -> Iterable[bytes]:
        """Set a fact no AWS API can set (POST): root MFA on or off, an access key's age."""
        if method != "POST":
            start_response("405 Method Not Allowed", [("Content-Type", "application/json"), ("Allow", "POST")])
            return [json.dumps({"error": f"{path} takes POST"}).encode()]
        arg = {k: v[0] for k, v in query.items()}
        account = arg.get("account") or account_for_access_key(None)
        try:
            if path == "/_gameday/root-mfa":
                if arg.get("enabled") not in ("0", "1"):
                    raise ValueError("enabled must be 0 or 1")
                body = self.plane.config.set_root_mfa(account, arg["enabled"] == "1")
            else:
                body = self.plane.config.age_access_key(account, arg["user"], arg["key"], float(arg["days"]))
        except (KeyError, ValueError, LookupError) as exc:
            start_response("400 Bad Request", [("Content-Type", "application/json")])
            return [json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode()]
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(body).encode()]


_SIMULATIONS = ("/_gameday/root-mfa", "/_gameday/age-access-key")


class _QuietHandler(MotoRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


class _Dispatcher(DomainDispatcherApplication):
    """moto's dispatcher, remembering which backend serves a host: moto works it out again on every request
    (listing its package directory, trying every URL pattern) under a lock all requests share."""

    def __init__(self, create_app: Callable):
        super().__init__(create_app)
        self._backends: dict[str | None, Any] = {}

    def get_backend_for_host(self, host: str | None) -> Any:
        if host not in self._backends:  # called under moto's lock; the answer for a host never changes
            self._backends[host] = super().get_backend_for_host(host)
        return self._backends[host]


class EmbeddedServer:
    """moto + the monitoring plane, served on a loopback address and a free port."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, time_scale: float = 60.0,
                 latency_profile: str = "instant", prewarm: bool = True):
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"the embedded endpoint binds loopback only, not {host}")
        self.host, self.port = host, port
        self.plane = Plane(time_scale=time_scale, latency_profile=latency_profile, prewarm=prewarm)
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> str:
        app = PlaneMiddleware(_Dispatcher(create_backend_app), self.plane)
        self._server = make_server(self.host, self.port, app, threaded=True, request_handler=_QuietHandler)
        self.port = self._server.server_address[1]
        try:
            self.plane.start(self.url)
        except BaseException:
            self._server.server_close()
            self._server = None
            raise
        self._thread = threading.Thread(target=self._server.serve_forever, name="gameday-endpoint", daemon=True)
        self._thread.start()
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self.plane.stop()


def _read_body(environ: dict) -> bytes:
    length = environ.get("CONTENT_LENGTH")
    stream = environ["wsgi.input"]
    if length:
        return stream.read(int(length))
    if environ.get("wsgi.input_terminated"):
        return stream.read()
    return b""

