"""How Slack reads a Web API request: arguments from the query string and the body, and the token.

Slack takes form-encoded, multipart and JSON bodies. The token comes from ``Authorization:
Bearer`` or a ``token`` field of a form body; Slack takes no token from a JSON body, nor (for
current apps) from the query string.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request


class BadBody(Exception):
    """A body Slack cannot read: its error code (invalid_json, invalid_form_data...)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class ParsedRequest:
    args: dict[str, Any]
    token: str | None
    content_type: str


async def parse_request(request: Request) -> ParsedRequest:
    """A call's arguments and token, as Slack reads them; BadBody if it cannot."""
    args: dict[str, Any] = dict(request.query_params)
    args.pop("token", None)
    content_type = request.headers.get("content-type", "")
    media = content_type.split(";")[0].strip().lower()
    body_token: str | None = None
    body = await request.body() if request.method == "POST" else b""
    if body:
        if media == "application/json":
            try:
                data = json.loads(body)
            except ValueError:
                raise BadBody("invalid_json") from None
            if not isinstance(data, dict):
                raise BadBody("json_not_object")
            data.pop("token", None)
            args.update(data)
        elif media in ("application/x-www-form-urlencoded", "multipart/form-data"):
            fields = _form_fields(media, content_type, body)
            body_token = fields.pop("token", None)
            args.update(fields)
        elif media == "":
            raise BadBody("missing_post_type")
        else:
            raise BadBody("invalid_post_type")
    token = body_token
    authorization = request.headers.get("authorization")
    if authorization:
        scheme, _, value = authorization.partition(" ")
        token = value.strip() if scheme.lower() == "bearer" and value.strip() else None
    return ParsedRequest(args, token, content_type)


def _form_fields(media: str, content_type: str, body: bytes) -> dict[str, str]:
    try:
        if media == "application/x-www-form-urlencoded":
            return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        head = f"Content-Type: {content_type}\r\n\r\n".encode()
        parsed = BytesParser(policy=HTTP).parsebytes(head + body)
    except UnicodeDecodeError:
        raise BadBody("invalid_form_data") from None
    fields: dict[str, str] = {}
    if isinstance(parsed, EmailMessage) and parsed.is_multipart():
        for part in parsed.iter_parts():
            if not isinstance(part, EmailMessage):
                continue
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            if isinstance(name, str) and isinstance(payload, bytes):
                fields[name] = payload.decode("utf-8", errors="replace")
    if not fields:
        raise BadBody("invalid_form_data")
    return fields
