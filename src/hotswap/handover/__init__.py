"""Listening sockets that outlive one `serve` process: a takeover by a new `serve`
(take_over.py, hand_over.py, over channel.py with protocol.py's messages) and systemd
socket activation (activation.py); listeners.py names the sockets."""

from hotswap.handover.activation import inherit_from_systemd
from hotswap.handover.channel import socket_path
from hotswap.handover.hand_over import HandoverServer, Predecessor
from hotswap.handover.listeners import ADMIN, HTTPS, PROXY, ListenSockets
from hotswap.handover.take_over import Takeover, request_takeover

__all__ = [
    "ADMIN",
    "HTTPS",
    "PROXY",
    "HandoverServer",
    "ListenSockets",
    "Predecessor",
    "Takeover",
    "inherit_from_systemd",
    "request_takeover",
    "socket_path",
]
