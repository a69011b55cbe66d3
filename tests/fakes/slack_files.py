"""The newer file upload flow of the fake Slack Web API.

1. ``files.getUploadURLExternal(filename, length)`` answers an ``upload_url`` and a ``file_id``.
2. The client POSTs the bytes to ``upload_url`` (raw body, or multipart with a ``file`` part);
   the fake serves that URL itself (`upload_endpoint`) and answers ``OK - <bytes>`` as Slack does.
3. ``files.completeUploadExternal(files=[{"id", "title"}], channel_id=...)`` finishes the upload
   and, with a channel, shares it there as a message.
"""

from __future__ import annotations

from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from tests.fakes.slack_calls import Args, CallContext, SlackError, slack_method
from tests.fakes.slack_state import FileRecord, Workspace

UPLOAD_PATH = "upload/v1/"


@slack_method("files.getUploadURLExternal", errors=("missing_argument", "invalid_arguments"))
def files_get_upload_url_external(ctx: CallContext, args: Args) -> dict[str, Any]:
    ws = ctx.workspace
    filename = args.string("filename")
    if not filename or not args.present("length"):
        raise SlackError("missing_argument")
    try:
        length = args.integer("length")
    except ValueError:
        raise SlackError("invalid_arguments") from None
    if length is None or length < 1:
        raise SlackError("invalid_arguments")
    upload_id = ws.new_id("", 24).lower()
    record = FileRecord(
        id=ws.new_id("F"),
        name=filename,
        length=length,
        upload_id=upload_id,
        uploader=ctx.caller,
        created=int(ctx.now),
        alt_txt=args.string("alt_txt") or None,
    )
    ws.files[record.id] = record
    ws.uploads[upload_id] = record.id
    return {"upload_url": f"{ctx.base_url}{UPLOAD_PATH}{upload_id}", "file_id": record.id}


@slack_method(
    "files.completeUploadExternal",
    errors=("file_not_found", "channel_not_found", "not_in_channel", "invalid_arguments"),
)
def files_complete_upload_external(ctx: CallContext, args: Args) -> dict[str, Any]:
    ws = ctx.workspace
    try:
        items = args.decoded("files")
    except ValueError:
        raise SlackError("invalid_arguments") from None
    if not isinstance(items, list) or not items:
        raise SlackError("invalid_arguments")
    records: list[tuple[FileRecord, str]] = []
    for item in items:
        record = ws.files.get(item.get("id", "")) if isinstance(item, dict) else None
        if record is None or record.content is None or record.completed:
            raise SlackError("file_not_found")
        records.append((record, str(item.get("title") or "")))
    channels = [c for c in args.string("channels").split(",") if c]
    if args.present("channel_id"):
        channels.insert(0, args.string("channel_id"))
    targets = [ctx.channel(ref) for ref in channels]
    for channel in targets:
        if ctx.caller not in channel.members:
            raise SlackError("not_in_channel")
    for record, title in records:
        record.completed = True
        record.title = title or record.name
    for channel in targets:
        thread_ts = args.string("thread_ts") or None
        if thread_ts is not None and thread_ts not in channel.messages:
            thread_ts = None
        message = ws.add_message(
            channel,
            user=ctx.caller,
            text=args.string("initial_comment"),
            thread_ts=thread_ts,
            files=[r.to_api() for r, _ in records],
            from_bot=True,
        )
        for record, _ in records:
            record.shares.append((channel.id, message.ts))
    return {"files": [r.to_api() for r, _ in records]}


def _multipart_file(content_type: str, body: bytes) -> bytes | None:
    head = f"Content-Type: {content_type}\r\n\r\n".encode()
    parsed = BytesParser(policy=HTTP).parsebytes(head + body)
    if not isinstance(parsed, EmailMessage):
        return None
    for part in parsed.iter_parts():
        if isinstance(part, EmailMessage) and (
            part.get_param("name", header="content-disposition") == "file" or part.get_filename()
        ):
            payload = part.get_payload(decode=True)
            return payload if isinstance(payload, bytes) else None
    return None


async def upload_endpoint(ws: Workspace, request: Request) -> Response:
    """The upload URL files.getUploadURLExternal hands out: stores the bytes of one file."""
    file_id = ws.uploads.get(request.path_params["upload_id"])
    record = ws.files.get(file_id) if file_id else None
    if record is None or record.completed:
        return PlainTextResponse("Not Found", status_code=404)
    body = await request.body()
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        data = _multipart_file(content_type, body)
        if data is None:
            return PlainTextResponse("Bad Request: no file part", status_code=400)
        body = data
    record.content = body
    return PlainTextResponse(f"OK - {len(body)}")
