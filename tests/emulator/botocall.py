"""Real botocore requests for resolve(): built and signed by boto3, answered by a canned response, never sent."""

from __future__ import annotations

from urllib.parse import urlsplit

import boto3
from botocore.awsrequest import AWSResponse
from botocore.config import Config

ENDPOINT = "http://127.0.0.1:1"


class _Body:
    def __init__(self, data: bytes):
        self.data = data

    def stream(self, **_):
        yield self.data


def exchange(service: str, operation: str, params: dict, *, status: int = 200, headers: dict | None = None,
             body: bytes = b"", endpoint: str = ENDPOINT, config: Config | None = None,
             region: str = "us-east-1", remote_addr: str = "198.51.100.7") -> dict:
    """The resolve() arguments for one boto3 call: its real request, answered by a canned response."""
    sent = []

    def answer(request, **_):
        sent.append(request)
        return AWSResponse(request.url, status, headers or {}, _Body(body))

    cfg = Config(retries={"total_max_attempts": 1}).merge(config or Config())
    client = boto3.client(service, endpoint_url=endpoint, region_name=region, config=cfg,
                          aws_access_key_id="AKIAIOSFODNN7EXAMPLE", aws_secret_access_key="secret")
    client.meta.events.register("before-send", answer)
    try:
        getattr(client, operation)(**params)
    except Exception:  # canned errors raise in the client; only the captured request matters
        pass
    request = sent[0]
    url = urlsplit(request.url)
    req_headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}
    req_headers.setdefault("Host", url.netloc)
    data = request.body or b""
    data = data.encode() if isinstance(data, str) else data if isinstance(data, bytes) else data.read()
    return dict(method=request.method, path=url.path, query=url.query, headers=req_headers, body=data,
                status=status, response_headers=headers or {}, response_body=body,
                remote_addr=remote_addr)
