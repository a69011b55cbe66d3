"""What the vendor stand-ins share: serving on loopback while in a ``with`` block.

A stand-in subclasses :class:`Standin`, names the HTTP methods it serves in ``METHODS`` and
answers each request in :meth:`Standin.reply`: ``(status, headers, body)`` sent as JSON (a 304
without a body), or None to drop the connection unanswered (applied, the answer lost).
"""

from __future__ import annotations

from email.message import Message
from typing import Any, ClassVar, Self

from tests.loopback import Loopback, QuietHandler

Reply = tuple[int, dict[str, str], Any]


class Standin:
    """A fake vendor API served on 127.0.0.1 from ``with fake:`` until the block ends."""

    METHODS: ClassVar[tuple[str, ...]] = ("GET", "POST")
    _server: Loopback | None = None

    def reply(self, method: str, path: str, headers: Message, body: bytes) -> Reply | None:
        """The answer to one request (``headers`` as sent, looked up in any case)."""
        raise NotImplementedError

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        return self._server.url

    def __enter__(self) -> Self:
        self._server = Loopback(handler(self))
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()


def lower(headers: Message) -> dict[str, str]:
    """The request's headers by lower-case name."""
    return {k.lower(): v for k, v in headers.items()}


def handler(fake: Standin) -> type[QuietHandler]:
    """A request handler answering ``fake.METHODS`` with ``fake.reply``."""

    class Handler(QuietHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            result = fake.reply(self.command, self.path, self.headers, body)
            if result is None:
                self.close_connection = True
                self.connection.shutdown(2)  # applied, answer lost
                return
            code, headers, answer = result
            if code == 304:
                self.send_response(304)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                return
            self.send_json(code, answer, headers)

    for method in fake.METHODS:
        setattr(Handler, f"do_{method}", Handler._serve)
    return Handler
