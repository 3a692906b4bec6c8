"""A loopback stand-in for Kaggle's API, for running the real ``kaggle`` CLI in tests.

kaggle 2.x ignores ``KAGGLE_API_ENVIRONMENT=TEST`` (its client is always built
for production unless ``--local``), but ``KAGGLE_API_ENVIRONMENT=LOCALHOST``
makes it call ``http://localhost/api/v1/<Service>/<Rpc>``. Rather than bind
port 80, the CLI is given ``HTTP_PROXY`` pointing here: requests then arrives
with absolute URLs on an ephemeral loopback port, and blob uploads (a ``PUT``
to the ``createUrl`` this server hands out) come here too. ``HTTPS_PROXY``
points here as well and every ``CONNECT`` is refused and recorded, so a CLI
that tried production would fail the test instead of leaving the machine.
"""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

STUB_USERNAME = "stub-user"
STUB_KEY = "stub-key-0123456789abcdef"


@dataclass
class Recorded:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes

    @property
    def rpc(self) -> str:
        """``Service/Rpc`` for API calls, e.g. ``kernels.KernelsApiService/SaveKernel``."""
        path = urlsplit(self.url).path
        return path.split("/api/v1/", 1)[1] if "/api/v1/" in path else path

    def json(self) -> dict:
        return json.loads(self.body or b"{}")


@dataclass(frozen=True)
class Reply:
    """One scripted answer: a status with a JSON payload, or a raw body (an outage page)."""

    status: int
    payload: dict | None = None
    body: bytes | None = None
    content_type: str = "application/json"
    delay_s: float = 0.0


def error_reply(status: int, message: str) -> Reply:
    """What Kaggle's API sends for a refusal: ``{"code": ..., "message": ...}``."""
    return Reply(status, {"code": status, "message": message})


@dataclass
class StubKaggle:
    """Scripted answers; every request is kept in ``requests`` in arrival order."""

    existing_datasets: set[str] = field(default_factory=set)
    dataset_statuses: list[str] = field(default_factory=lambda: ["READY"])
    push_error: str | None = None
    kernel_version: int = 1
    kernel_statuses: list[str] = field(default_factory=lambda: ["COMPLETE"])
    requests: list[Recorded] = field(default_factory=list)
    uploads: dict[str, bytes] = field(default_factory=dict)
    scripted: dict[str, list[Reply]] = field(default_factory=dict)

    def script(self, rpc_name: str, *replies: Reply) -> None:
        """Answer the next calls of ``rpc_name`` (e.g. ``SaveKernel``) with ``replies``, in order."""
        self.scripted.setdefault(rpc_name, []).extend(replies)

    def __enter__(self) -> StubKaggle:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _record(self) -> Recorded:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                item = Recorded(self.command, self.path, dict(self.headers), body)
                stub.requests.append(item)
                return item

            def _reply(self, status: int, payload: dict | None = None) -> None:
                self._send(Reply(status, payload))

            def _send(self, reply: Reply) -> None:
                if reply.delay_s and stub._closing.wait(reply.delay_s):
                    return
                data = reply.body if reply.body is not None else json.dumps(reply.payload or {}).encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_CONNECT(self) -> None:
                self._record()
                self.send_error(403, "the stub answers plain HTTP on loopback only")

            def do_PUT(self) -> None:
                item = self._record()
                stub.uploads[urlsplit(item.url).path.rsplit("/", 1)[-1]] = item.body
                self._reply(200)

            def do_POST(self) -> None:
                item = self._record()
                queued = stub.scripted.get(item.rpc.rsplit("/", 1)[-1])
                if queued:
                    self._send(queued.pop(0))
                    return
                status, payload = stub.answer(item.rpc, item.json())
                self._reply(status, payload)

            do_GET = do_POST

        self._closing = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    @property
    def proxy_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def answer(self, rpc: str, body: dict) -> tuple[int, dict]:
        """The response Kaggle would give, as far as the CLI reads it."""
        name = rpc.rsplit("/", 1)[-1]
        if name == "GetDatasetStatus":
            ref = f"{body.get('ownerSlug')}/{body.get('datasetSlug')}"
            if ref not in self.existing_datasets:
                return 404, {"code": 404, "message": f"dataset {ref} not found"}
            status = (
                self.dataset_statuses.pop(0)
                if len(self.dataset_statuses) > 1
                else self.dataset_statuses[0]
            )
            return 200, {"status": status}
        if name == "StartBlobUpload":
            token = f"blob-{len(self.requests)}-{body.get('name')}"
            return 200, {"token": token, "createUrl": f"http://localhost/upload/{token}"}
        if name in ("CreateDataset", "CreateDatasetVersion"):
            ref = f"{body.get('ownerSlug')}/{body.get('slug') or body.get('datasetSlug')}"
            self.existing_datasets.add(ref)
            return 200, {"ref": ref, "url": f"http://localhost/datasets/{ref}", "status": "ok"}
        if name == "SaveKernel":
            if self.push_error:
                return 200, {"error": self.push_error}
            return 200, {
                "ref": body.get("slug"),
                "url": f"http://localhost/code/{body.get('slug')}",
                "versionNumber": self.kernel_version,
            }
        if name == "GetKernelSessionStatus":
            status = (
                self.kernel_statuses.pop(0)
                if len(self.kernel_statuses) > 1
                else self.kernel_statuses[0]
            )
            return 200, {"status": status}
        if name == "CreateCodeSubmission":
            return 200, {"message": "Successfully submitted", "ref": 4242}
        if name == "GetSubmissionLimits":
            return 200, {}
        return 404, {"code": 404, "message": f"the stub does not implement {rpc}"}

    def calls(self, rpc_name: str) -> list[dict]:
        """JSON bodies of the API calls named ``rpc_name`` (e.g. ``SaveKernel``)."""
        return [
            r.json() for r in self.requests if r.method == "POST" and r.rpc.endswith(f"/{rpc_name}")
        ]

    def rpc_names(self) -> list[str]:
        return [r.rpc.rsplit("/", 1)[-1] for r in self.requests if r.method == "POST"]

    def cli_environment(
        self, home: Path, username: str = STUB_USERNAME, key: str = STUB_KEY
    ) -> dict[str, str]:
        """Variables that point the real CLI at this stub with fake credentials."""
        return {
            "HOME": str(home),
            "TMPDIR": str(home),
            "KAGGLE_API_ENVIRONMENT": "LOCALHOST",
            "KAGGLE_USERNAME": username,
            "KAGGLE_KEY": key,
            "HTTP_PROXY": self.proxy_url,
            "http_proxy": self.proxy_url,
            "HTTPS_PROXY": self.proxy_url,
            "https_proxy": self.proxy_url,
        }


# Variables of the surrounding machine that would change where or as whom the CLI connects.
CLEARED_VARIABLES = (
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
    "KAGGLE_API_TOKEN",
    "KAGGLE_CONFIG_DIR",
    "XDG_CONFIG_HOME",
    "KAGGLE_IAP_TOKEN",
    "REQUESTS_CA_BUNDLE",
)


def basic_auth(username: str, key: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{key}".encode()).decode()
