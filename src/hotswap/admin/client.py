"""The CLI's client for the admin API: blocking http.client, one connection per call.

Every failure becomes an AdminClientError whose message tells the user what
to do: the address tried when the server is not running, the config key to
check when the token is refused, the server's own message otherwise.
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Generator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from hotswap import __version__
from hotswap.config import Address, Config
from hotswap.errors import AdminClientError

CONNECT_TIMEOUT = 5.0
REQUEST_TIMEOUT = 60.0  # a status or a reload answers at once; this only bounds a hung server
# Wildcard listen addresses are reached through loopback.
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


class AdminClient:
    """Talks to the admin API of a running `hotswap serve`."""

    def __init__(self, address: Address, token: str = "", *, config_path: Path | None = None):
        host = _WILDCARDS.get(address.host, address.host)
        self.address = Address(host, address.port)
        self.token = token
        self.config_path = config_path

    @classmethod
    def from_config(cls, config: Config) -> AdminClient:
        """A client for the server that `config` describes (admin_listen and its token)."""
        server = config.server
        return cls(server.admin_listen, server.admin_token, config_path=config.path)

    # -- API ---------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        document = self._json("GET", "/v1/status")
        if not isinstance(document, dict):
            raise AdminClientError(f"hotswap at {self.address} sent an unexpected status document")
        return document

    def reload(self) -> list[str]:
        document = self._json("POST", "/v1/reload")
        changes = document.get("changes", []) if isinstance(document, dict) else []
        return [str(line) for line in changes]

    def pause(self, route: str, timeout: str | None = None) -> dict[str, Any]:
        body = {"timeout": timeout} if timeout else {}
        return self._object("POST", f"/v1/pause/{quote(route, safe='')}", body)

    def resume(self, route: str) -> dict[str, Any]:
        return self._object("POST", f"/v1/resume/{quote(route, safe='')}", {})

    def maintenance(
        self, route: str, *, message: str = "", retry_after: str | None = None, off: bool = False
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"off": True} if off else {"message": message}
        if retry_after and not off:
            body["retry_after"] = retry_after
        return self._object("POST", f"/v1/maintenance/{quote(route, safe='')}", body)

    def _object(self, method: str, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        document = self._json(method, path, body)
        if not isinstance(document, dict):
            raise AdminClientError(f"hotswap at {self.address} sent an unexpected answer")
        return document

    def metrics(self) -> str:
        conn, response = self._request("GET", "/metrics")
        try:
            return response.read().decode("utf-8", "replace")
        finally:
            conn.close()

    def deploy(
        self, domain: str, image: str | None = None, *, force: bool = False
    ) -> Generator[dict[str, Any], None, None]:
        """Start a deploy; yield its progress events as they arrive."""
        body: dict[str, Any] = {}
        if image is not None:
            body["image"] = image
        if force:
            body["force"] = True
        return self._stream(f"/v1/deploy/{quote(domain, safe='')}", body)

    def rollback(self, domain: str) -> Generator[dict[str, Any], None, None]:
        return self._stream(f"/v1/rollback/{quote(domain, safe='')}", {})

    def logs(
        self, route: str, *, follow: bool = False, tail: int | None = None, since: str = ""
    ) -> Generator[dict[str, Any], None, None]:
        """The route's log stream (admin/logs.py): container events and log lines."""
        query: dict[str, str] = {}
        if follow:
            query["follow"] = "1"
        if tail is not None:
            query["tail"] = str(tail)
        if since:
            query["since"] = since
        path = f"/v1/logs/{quote(route, safe='')}"
        if query:
            path += "?" + urlencode(query)
        return self._stream(path, None, method="GET")

    # -- plumbing ----------------------------------------------------------------------

    def _json(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        conn, response = self._request(method, path, body)
        try:
            return _decode(response.read(), self.address)
        except (OSError, http.client.HTTPException) as exc:
            raise self._lost(exc) from exc
        finally:
            conn.close()

    def _stream(
        self, path: str, body: Mapping[str, Any] | None, *, method: str = "POST"
    ) -> Generator[dict[str, Any], None, None]:
        conn, response = self._request(method, path, body)
        # Events may be minutes apart (pulling, waiting for health): no read timeout.
        if conn.sock is not None:
            conn.sock.settimeout(None)
        try:
            while True:
                try:
                    line = response.readline()
                except (OSError, http.client.HTTPException) as exc:
                    raise self._lost(exc, during_deploy=method == "POST") from exc
                if not line:
                    return
                if line.strip():
                    event = _decode(line, self.address)
                    if isinstance(event, dict):
                        yield event
        finally:
            conn.close()

    def _request(
        self, method: str, path: str, body: Mapping[str, Any] | None = None
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        host, port = self.address.host, self.address.port
        conn = http.client.HTTPConnection(host, port, timeout=CONNECT_TIMEOUT)
        headers = {"User-Agent": f"hotswap/{__version__}", "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            conn.connect()
        except OSError as exc:
            conn.close()
            raise AdminClientError(self._unreachable(exc)) from exc
        try:
            if conn.sock is not None:
                conn.sock.settimeout(REQUEST_TIMEOUT)
            conn.request(method, path, body=payload, headers=headers)
            response = conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise self._lost(exc) from exc
        if response.status >= 400:
            try:
                raise self._refused(response)
            finally:
                conn.close()
        return conn, response

    def _unreachable(self, exc: OSError) -> str:
        where = f"cannot reach hotswap at {self.address}"
        if isinstance(exc, ConnectionRefusedError):
            return f"{where}: connection refused — is `hotswap serve` running?"
        if isinstance(exc, socket.timeout | TimeoutError):
            return f"{where}: no answer within {CONNECT_TIMEOUT:g}s"
        if isinstance(exc, socket.gaierror):
            return f"{where}: {exc.strerror or exc}"
        return f"{where}: {exc.strerror or exc}"

    def _lost(self, exc: BaseException, *, during_deploy: bool = False) -> AdminClientError:
        reason = str(exc) or type(exc).__name__
        if isinstance(exc, socket.timeout | TimeoutError):
            reason = f"no answer within {REQUEST_TIMEOUT:g}s"
        message = f"lost the connection to hotswap at {self.address}: {reason}"
        if during_deploy:
            message += "; the deploy goes on in the server — see `hotswap status`"
        return AdminClientError(message)

    def _refused(self, response: http.client.HTTPResponse) -> AdminClientError:
        try:
            document = json.loads(response.read() or b"{}")
        except (ValueError, OSError, http.client.HTTPException):
            document = {}
        message = str(document.get("error", "")) if isinstance(document, dict) else ""
        message = message or f"HTTP {response.status} {response.reason}"
        if response.status == 401:
            config = f" in {self.config_path}" if self.config_path else ""
            if not self.token:
                return AdminClientError(
                    f"hotswap at {self.address} requires an admin token: set server.admin_token "
                    f"or server.admin_token_file{config} to the server's token"
                )
            return AdminClientError(
                f"hotswap at {self.address} refused the admin token ({message}): "
                f"check server.admin_token / server.admin_token_file{config}"
            )
        problems = document.get("problems") if isinstance(document, dict) else None
        if isinstance(problems, list) and problems:
            return AdminClientError("\n".join(str(p) for p in problems))
        return AdminClientError(message)


def _decode(data: bytes, address: Address) -> Any:
    try:
        return json.loads(data)
    except ValueError as exc:
        raise AdminClientError(f"hotswap at {address} sent invalid JSON: {exc}") from None
