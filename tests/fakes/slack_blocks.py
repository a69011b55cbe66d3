"""Block Kit checks, with Slack's limits and Slack's way of reporting them.

Slack answers a malformed message with ``invalid_blocks`` and one line per problem, such as
``must be less than 151 characters [json-pointer:/blocks/0/text/text]``; a malformed modal with
``invalid_arguments`` and the same lines under ``/view``. `message_block_errors` and
`view_errors` return those lines (without the ``[ERROR]`` prefix Slack adds in
``response_metadata.messages``).

Limits (docs.slack.dev Block Kit reference): 50 blocks a message, 100 a view; header text 150;
section text 3000, at most 10 fields of 2000; button text 75, value 2000, url 3000; action_id and
block_id 255; a confirm dialog needs title (100), text (300), confirm and deny (30); option text
75, value 150; modal title, submit and close 24; private_metadata 3000; callback_id 255.

`control_sequences` finds what Slack would act on in a message (mentions, broadcasts, links):
the fake records them for every message it receives (``slack_messages.received_sequences``).
"""

from __future__ import annotations

import re
from typing import Any

MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100

BLOCK_TYPES = frozenset(
    {
        "actions",
        "call",
        "context",
        "context_actions",
        "divider",
        "file",
        "header",
        "image",
        "input",
        "markdown",
        "rich_text",
        "section",
        "table",
        "video",
    }
)
SELECT_TYPES = frozenset(
    {
        "static_select",
        "external_select",
        "users_select",
        "conversations_select",
        "channels_select",
        "multi_static_select",
        "multi_external_select",
        "multi_users_select",
        "multi_conversations_select",
        "multi_channels_select",
    }
)
INPUT_ONLY_TYPES = frozenset(
    {
        "plain_text_input",
        "email_text_input",
        "url_text_input",
        "number_input",
        "rich_text_input",
        "file_input",
    }
)
ELEMENT_TYPES = (
    frozenset(
        {
            "button",
            "checkboxes",
            "datepicker",
            "datetimepicker",
            "image",
            "overflow",
            "radio_buttons",
            "timepicker",
            "workflow_button",
        }
    )
    | SELECT_TYPES
    | INPUT_ONLY_TYPES
)


class _Checker:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def fail(self, message: str, pointer: str) -> None:
        self.errors.append(f"{message} [json-pointer:{pointer}]")

    def max_len(self, value: Any, limit: int, pointer: str) -> None:
        if isinstance(value, str) and len(value) > limit:
            self.fail(f"must be less than {limit + 1} characters", pointer)

    def string(
        self, obj: dict[str, Any], key: str, limit: int, ptr: str, *, required: bool
    ) -> None:
        value = obj.get(key)
        if value is None:
            if required:
                self.fail(f"missing required field: {key}", ptr)
            return
        if not isinstance(value, str):
            self.fail("must be a string", f"{ptr}/{key}")
            return
        self.max_len(value, limit, f"{ptr}/{key}")

    def text(
        self,
        obj: Any,
        pointer: str,
        limit: int,
        *,
        plain_only: bool = False,
        required: bool = True,
    ) -> None:
        if obj is None:
            if required:
                self.fail("must provide a text object", pointer)
            return
        if not isinstance(obj, dict):
            self.fail("must be an object", pointer)
            return
        kind = obj.get("type")
        allowed = ("plain_text",) if plain_only else ("plain_text", "mrkdwn")
        if kind not in allowed:
            self.fail(
                f"must be one of the following types: {', '.join(allowed)}", pointer + "/type"
            )
            return
        value = obj.get("text")
        if not isinstance(value, str):
            self.fail("missing required field: text", pointer)
            return
        if value == "":
            self.fail("must be more than 0 characters", pointer + "/text")
        self.max_len(value, limit, pointer + "/text")

    def block_list(self, blocks: Any, pointer: str, limit: int) -> None:
        if not isinstance(blocks, list):
            self.fail("must be an array", pointer)
            return
        if len(blocks) > limit:
            self.fail(f"no more than {limit} items allowed", pointer)
        seen: set[str] = set()
        for index, block in enumerate(blocks):
            ptr = f"{pointer}/{index}"
            if not isinstance(block, dict):
                self.fail("must be an object", ptr)
                continue
            block_id = block.get("block_id")
            if block_id is not None:
                self.max_len(block_id, 255, ptr + "/block_id")
                if block_id in seen:
                    self.fail(f"duplicate block_id: {block_id}", ptr + "/block_id")
                seen.add(str(block_id))
            self.block(block, ptr)

    def block(self, block: dict[str, Any], ptr: str) -> None:
        kind = block.get("type")
        if kind not in BLOCK_TYPES:
            self.fail(f"unsupported type: {kind}", ptr + "/type")
            return
        check = getattr(self, f"block_{kind}", None)
        if check is not None:
            check(block, ptr)

    # -- blocks ------------------------------------------------------------------------------

    def block_section(self, block: dict[str, Any], ptr: str) -> None:
        text, fields = block.get("text"), block.get("fields")
        if text is None and fields is None:
            self.fail("must define either `text` or `fields`", ptr)
        if text is not None:
            self.text(text, ptr + "/text", 3000)
        if fields is not None:
            if not isinstance(fields, list):
                self.fail("must be an array", ptr + "/fields")
            else:
                if len(fields) > 10:
                    self.fail("no more than 10 items allowed", ptr + "/fields")
                for index, field in enumerate(fields):
                    self.text(field, f"{ptr}/fields/{index}", 2000)
        if "accessory" in block:
            self.element(block["accessory"], ptr + "/accessory", input_ok=False)

    def block_header(self, block: dict[str, Any], ptr: str) -> None:
        self.text(block.get("text"), ptr + "/text", 150, plain_only=True)

    def block_context(self, block: dict[str, Any], ptr: str) -> None:
        elements = block.get("elements")
        if not isinstance(elements, list) or not elements:
            self.fail("must provide at least 1 element", ptr + "/elements")
            return
        if len(elements) > 10:
            self.fail("no more than 10 items allowed", ptr + "/elements")
        for index, element in enumerate(elements):
            eptr = f"{ptr}/elements/{index}"
            if isinstance(element, dict) and element.get("type") == "image":
                self.image(element, eptr)
            else:
                self.text(element, eptr, 3000)

    def block_actions(self, block: dict[str, Any], ptr: str) -> None:
        elements = block.get("elements")
        if not isinstance(elements, list) or not elements:
            self.fail("must provide at least 1 element", ptr + "/elements")
            return
        if len(elements) > 25:
            self.fail("no more than 25 items allowed", ptr + "/elements")
        for index, element in enumerate(elements):
            self.element(element, f"{ptr}/elements/{index}", input_ok=False)

    def block_image(self, block: dict[str, Any], ptr: str) -> None:
        self.image(block, ptr)
        if "title" in block:
            self.text(block["title"], ptr + "/title", 2000, plain_only=True)

    def block_input(self, block: dict[str, Any], ptr: str) -> None:
        self.text(block.get("label"), ptr + "/label", 2000, plain_only=True)
        if "hint" in block:
            self.text(block["hint"], ptr + "/hint", 2000, plain_only=True)
        if "element" not in block:
            self.fail("missing required field: element", ptr)
        else:
            self.element(block["element"], ptr + "/element", input_ok=True)

    def block_markdown(self, block: dict[str, Any], ptr: str) -> None:
        self.string(block, "text", 12000, ptr, required=True)

    def block_rich_text(self, block: dict[str, Any], ptr: str) -> None:
        if not isinstance(block.get("elements"), list):
            self.fail("missing required field: elements", ptr)

    def block_video(self, block: dict[str, Any], ptr: str) -> None:
        for key in ("video_url", "thumbnail_url", "alt_text"):
            self.string(block, key, 3000, ptr, required=True)
        self.text(block.get("title"), ptr + "/title", 200, plain_only=True)

    # -- elements and composition objects ----------------------------------------------------

    def image(self, obj: dict[str, Any], ptr: str) -> None:
        if "image_url" not in obj and "slack_file" not in obj:
            self.fail("must provide either `image_url` or `slack_file`", ptr)
        self.string(obj, "image_url", 3000, ptr, required=False)
        self.string(obj, "alt_text", 2000, ptr, required=True)

    def element(self, element: Any, ptr: str, *, input_ok: bool) -> None:
        if not isinstance(element, dict):
            self.fail("must be an object", ptr)
            return
        kind = element.get("type")
        if kind not in ELEMENT_TYPES or (kind in INPUT_ONLY_TYPES and not input_ok):
            self.fail(f"unsupported type: {kind}", ptr + "/type")
            return
        if kind == "image":
            self.image(element, ptr)
            return
        self.string(element, "action_id", 255, ptr, required=False)
        if "confirm" in element:
            self.confirm(element["confirm"], ptr + "/confirm")
        if "placeholder" in element:
            self.text(element["placeholder"], ptr + "/placeholder", 150, plain_only=True)
        if kind == "button":
            self.text(element.get("text"), ptr + "/text", 75, plain_only=True)
            self.string(element, "value", 2000, ptr, required=False)
            self.string(element, "url", 3000, ptr, required=False)
            self.string(element, "accessibility_label", 75, ptr, required=False)
            if element.get("style") not in (None, "primary", "danger"):
                self.fail("must be one of: primary, danger", ptr + "/style")
        elif kind == "overflow":
            self.options(element.get("options"), ptr + "/options", 5, plain_only=True, minimum=1)
        elif kind in ("checkboxes", "radio_buttons"):
            self.options(element.get("options"), ptr + "/options", 10, plain_only=False)
        elif kind in ("static_select", "multi_static_select"):
            if "options" in element or "option_groups" not in element:
                self.options(element.get("options"), ptr + "/options", 100, plain_only=True)
        elif kind == "plain_text_input":
            max_length = element.get("max_length")
            if isinstance(max_length, int) and not 1 <= max_length <= 3000:
                self.fail("must be between 1 and 3000", ptr + "/max_length")

    def options(
        self, options: Any, ptr: str, limit: int, *, plain_only: bool, minimum: int = 1
    ) -> None:
        if not isinstance(options, list) or len(options) < minimum:
            self.fail(f"must provide at least {minimum} option", ptr)
            return
        if len(options) > limit:
            self.fail(f"no more than {limit} items allowed", ptr)
        for index, option in enumerate(options):
            optr = f"{ptr}/{index}"
            if not isinstance(option, dict):
                self.fail("must be an object", optr)
                continue
            self.text(option.get("text"), optr + "/text", 75, plain_only=plain_only)
            self.string(option, "value", 150, optr, required=True)
            if "description" in option:
                self.text(option["description"], optr + "/description", 75, plain_only=plain_only)

    def confirm(self, confirm: Any, ptr: str) -> None:
        if not isinstance(confirm, dict):
            self.fail("must be an object", ptr)
            return
        self.text(confirm.get("title"), ptr + "/title", 100, plain_only=True)
        self.text(confirm.get("text"), ptr + "/text", 300)
        self.text(confirm.get("confirm"), ptr + "/confirm", 30, plain_only=True)
        self.text(confirm.get("deny"), ptr + "/deny", 30, plain_only=True)
        if confirm.get("style") not in (None, "primary", "danger"):
            self.fail("must be one of: primary, danger", ptr + "/style")


def message_block_errors(blocks: Any) -> list[str]:
    """Problems with a message's ``blocks`` argument (already decoded from JSON)."""
    checker = _Checker()
    checker.block_list(blocks, "/blocks", MAX_MESSAGE_BLOCKS)
    return checker.errors


def view_errors(view: Any, *, surfaces: tuple[str, ...] = ("modal", "home")) -> list[str]:
    """Problems with a ``view`` argument: ``surfaces`` are the view types the method takes
    (views.open and views.push: ``modal``; views.publish: ``home``; views.update: both)."""
    checker = _Checker()
    if not isinstance(view, dict):
        checker.fail("must be an object", "/view")
        return checker.errors
    kind = view.get("type")
    if kind not in surfaces:
        checker.fail(f"unsupported type: {kind}", "/view/type")
        return checker.errors
    if kind == "modal":
        checker.text(view.get("title"), "/view/title", 24, plain_only=True)
        for key in ("close", "submit"):
            if key in view:
                checker.text(view[key], f"/view/{key}", 24, plain_only=True)
        blocks = view.get("blocks", [])
        has_input = isinstance(blocks, list) and any(
            isinstance(b, dict) and b.get("type") == "input" for b in blocks
        )
        if has_input and "submit" not in view:
            checker.fail("must provide a submit property when using input blocks", "/view")
    checker.block_list(view.get("blocks"), "/view/blocks", MAX_VIEW_BLOCKS)
    checker.string(view, "private_metadata", 3000, "/view", required=False)
    checker.string(view, "callback_id", 255, "/view", required=False)
    checker.string(view, "external_id", 255, "/view", required=False)
    return checker.errors


# -- control sequences ---------------------------------------------------------------------------

#: What Slack parses in mrkdwn and a message's top-level text: ``<!channel>``, ``<!here>``,
#: ``<!everyone>``, ``<!subteam^S…|…>``, ``<!date^…>``, ``<@U…>``, ``<#C…>`` and links
#: ``<https://…|label>`` (docs.slack.dev, "Formatting text for app surfaces").
CONTROL_SEQUENCE = re.compile(r"<(?:[!@#][^<>]*|[a-zA-Z][a-zA-Z0-9+.-]*:[^<>]*)>")
#: The ones that notify people: a broadcast, a user group, a person.
NOTIFYING = re.compile(r"^<(?:!channel|!here|!everyone|!subteam\^|@)")


def control_sequences(text: Any = None, blocks: Any = None) -> list[tuple[str, str]]:
    """Every control sequence Slack would act on, as ``(json pointer, sequence)``.

    Looked for in the top-level ``text`` and in every mrkdwn text object and ``markdown``
    block; plain_text is shown as typed, so it is not searched.
    """
    found: list[tuple[str, str]] = []
    if isinstance(text, str):
        found += [("/text", m.group(0)) for m in CONTROL_SEQUENCE.finditer(text)]

    def walk(node: Any, pointer: str) -> None:
        if isinstance(node, dict):
            if node.get("type") in ("mrkdwn", "markdown") and isinstance(node.get("text"), str):
                found.extend(
                    (pointer + "/text", m.group(0)) for m in CONTROL_SEQUENCE.finditer(node["text"])
                )
            for key, value in node.items():
                walk(value, f"{pointer}/{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{pointer}/{index}")

    walk(blocks, "/blocks")
    return found
