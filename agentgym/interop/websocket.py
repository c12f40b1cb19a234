"""The server side of a WebSocket (RFC 6455) over a ``http.server`` connection.

OpenEnv's client keeps one WebSocket per session, so ``agentgym serve --openenv`` must
accept one; the standard library has no WebSocket server. This is the small part a
server needs: the opening handshake, reading a client's (masked) text messages, sending
text, answering pings, and closing. No extensions are negotiated (the client's offer of
compression is simply not accepted, which RFC 6455 allows).
"""

from __future__ import annotations

import base64
import hashlib
import struct
from io import BufferedIOBase
from typing import Any

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_CONT, _TEXT, _BINARY, _CLOSE, _PING, _PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class WebSocketClosed(Exception):
    """The peer closed the connection (or it broke)."""


class WebSocketError(ValueError):
    """The peer broke the protocol; ``code`` is the close code to answer with."""

    def __init__(self, message: str, code: int = 1002):
        super().__init__(message)
        self.code = code


def accept_key(client_key: str) -> str:
    """The ``Sec-WebSocket-Accept`` value for a client's ``Sec-WebSocket-Key``."""
    return base64.b64encode(hashlib.sha1((client_key + _GUID).encode()).digest()).decode()


def _unmask(data: bytes, mask: bytes) -> bytes:
    # XOR as one big integer: a per-byte Python loop takes seconds on a 4 MiB message.
    n = len(data)
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")


class WebSocket:
    """One accepted connection: :meth:`receive` a text message, :meth:`send` one.

    ``max_message`` caps a message's size (a larger one is refused with close code 1009
    before its payload is read).
    """

    def __init__(self, rfile: BufferedIOBase, wfile: BufferedIOBase, max_message: int, sock: Any = None):
        self.rfile, self.wfile = rfile, wfile
        #: The socket under the files, for timeouts (optional).
        self.sock = sock
        self.max_message = max_message
        self.closed = False

    def _read(self, n: int) -> bytes:
        data = self.rfile.read(n)
        if data is None or len(data) < n:
            raise WebSocketClosed("connection lost")
        return data

    def _frame(self) -> tuple[bool, int, bytes]:
        b0, b1 = self._read(2)
        fin, opcode, masked, length = bool(b0 & 0x80), b0 & 0x0F, bool(b1 & 0x80), b1 & 0x7F
        if b0 & 0x70:
            raise WebSocketError("reserved bits set (no extension was negotiated)")
        if not masked:
            raise WebSocketError("a client's frames must be masked")
        if length == 126:
            (length,) = struct.unpack("!H", self._read(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", self._read(8))
        if opcode >= 0x8 and (length > 125 or not fin):
            raise WebSocketError("a control frame must be whole and at most 125 bytes")
        if length > self.max_message:
            raise WebSocketError(f"message larger than {self.max_message} bytes", code=1009)
        mask = self._read(4)
        return fin, opcode, _unmask(self._read(length), mask)

    def receive(self) -> str:
        """The next text message (pings are answered on the way); WebSocketClosed at the end."""
        parts: list[bytes] = []
        size = 0
        while True:
            fin, opcode, payload = self._frame()
            if opcode == _PING:
                self._send_frame(_PONG, payload)
                continue
            if opcode == _PONG:
                continue
            if opcode == _CLOSE:
                self.close(1000)
                raise WebSocketClosed("closed by the client")
            if opcode == _BINARY:
                raise WebSocketError("binary messages are not accepted; send JSON text", code=1003)
            if (opcode == _CONT) != bool(parts):
                raise WebSocketError("unexpected continuation frame")
            if opcode not in (_TEXT, _CONT):
                raise WebSocketError(f"unknown opcode {opcode}")
            size += len(payload)
            if size > self.max_message:
                raise WebSocketError(f"message larger than {self.max_message} bytes", code=1009)
            parts.append(payload)
            if fin:
                try:
                    return b"".join(parts).decode("utf-8")
                except UnicodeDecodeError:
                    raise WebSocketError("a text message must be UTF-8", code=1007) from None

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, n)
        elif n < 1 << 16:
            head = struct.pack("!BBH", 0x80 | opcode, 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 127, n)
        try:
            self.wfile.write(head + payload)
            self.wfile.flush()
        except OSError as exc:
            raise WebSocketClosed(str(exc)) from None

    def send(self, text: str) -> None:
        self._send_frame(_TEXT, text.encode("utf-8"))

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Send a close frame once (errors ignored: the peer may be gone)."""
        if self.closed:
            return
        self.closed = True
        try:
            self._send_frame(_CLOSE, struct.pack("!H", code) + reason.encode()[:120])
        except WebSocketClosed:
            pass
