"""Protocol helpers with no I/O: headers, X-Forwarded-*, Host, error pages, WebSocket frames."""

from hotswap.http.headers import (
    FRAMING,
    HOP_BY_HOP,
    Headers,
    connection_tokens,
    content_length,
    is_upgrade_request,
    request_headers_for_upstream,
    response_headers_for_client,
)
from hotswap.http.host import BadHost, normalize_host, origin_form, request_host
from hotswap.http.pages import error_page, reason
from hotswap.http.websocket import FrameTracker, close_frame

__all__ = [
    "FRAMING",
    "HOP_BY_HOP",
    "BadHost",
    "FrameTracker",
    "Headers",
    "close_frame",
    "connection_tokens",
    "content_length",
    "error_page",
    "is_upgrade_request",
    "normalize_host",
    "origin_form",
    "reason",
    "request_headers_for_upstream",
    "request_host",
    "response_headers_for_client",
]
