"""The fake against Slack's own spec, and the spec checker itself."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack_api import BOT_TOKEN, STRICT_ERROR, FakeSlack
from tests.fakes.slack_calls import HANDLERS
from tests.fakes.slack_spec import (
    GENERIC_ERRORS,
    KNOWN_SCHEMA_GAPS,
    SlackSpec,
    load_spec,
    parse_methods_txt,
    slack_data_dir,
)
from tests.fakes_tests.support import slack_error

# Errors the request pipeline answers for any method.
PIPELINE_ERRORS = {
    "not_authed",
    "invalid_auth",
    "ratelimited",
    "unknown_method",
    "internal_error",
    "service_unavailable",
    "invalid_json",
    "json_not_object",
    "invalid_form_data",
    "invalid_post_type",
    "missing_post_type",
}
NEWER_METHODS = {
    "apps.connections.open",
    "bookmarks.add",
    "bookmarks.list",
    "files.getUploadURLExternal",
    "files.completeUploadExternal",
}


@pytest.fixture(scope="module")
def spec() -> SlackSpec:
    return load_spec()


def test_every_fake_method_is_one_slack_describes(spec: SlackSpec) -> None:
    unknown = sorted(name for name in HANDLERS if spec.method(name) is None)
    assert unknown == []
    newer = {name for name in HANDLERS if "openapi" not in spec.methods[name].sources}
    assert newer == NEWER_METHODS


@pytest.mark.parametrize("method", sorted(HANDLERS))
def test_every_error_the_fake_can_answer_is_in_slacks_spec(spec: SlackSpec, method: str) -> None:
    declared = HANDLERS[method].errors | PIPELINE_ERRORS
    assert sorted(declared - spec.methods[method].allowed_errors) == []


def test_pipeline_errors_are_slacks_common_errors() -> None:
    assert PIPELINE_ERRORS <= GENERIC_ERRORS


def test_methods_txt_is_parsed() -> None:
    entries = parse_methods_txt((slack_data_dir() / "methods.txt").read_text())

    create = entries["conversations.create"]
    assert create.tier == "Tier 2"
    assert create.required == {"name"}
    assert {"name_taken", "invalid_name_specials"} <= create.errors
    assert entries["chat.postMessage"].tier == "Special"
    assert entries["files.getUploadURLExternal"].required == {"filename", "length"}


def test_spec_merges_openapi_and_methods_txt(spec: SlackSpec) -> None:
    post = spec.methods["chat.postMessage"]
    assert {"msg_too_long", "invalid_blocks"} <= post.errors  # one from each source
    assert {"metadata", "icon_emoji"} <= post.args
    assert post.required == {"channel"}
    assert spec.methods["pins.list"].required == {"channel"}  # only in the OpenAPI file
    assert "no_such_subteam" in spec.methods["usergroups.users.list"].errors


def test_check_request_catches_unknown_and_missing_arguments(spec: SlackSpec) -> None:
    assert spec.check_request("conversations.invite", {"channel": "C1", "users": "U1"}) == []
    problems = spec.check_request("conversations.invite", {"channel": "C1", "user": "U1"})
    assert any("unknown argument 'user'" in p for p in problems)
    assert any("missing required argument 'users'" in p for p in problems)
    assert spec.check_request("bookmarks.add", {"title": "t", "type": "link", "url": "x"}) == [
        "bookmarks.add: unknown argument 'url' (Slack's spec knows "
        "['access_level', 'channel_id', 'emoji', 'entity_id', 'link', 'parent_id', 'title', "
        "'type'])"
    ]
    assert spec.check_request("chat.postMesage", {}) == [
        "chat.postMesage: not a method in Slack's spec"
    ]


def test_check_response_catches_wrong_errors_and_malformed_success(spec: SlackSpec) -> None:
    assert spec.check_response("pins.add", 200, {"ok": False, "error": "already_pinned"}) == []
    assert spec.check_response("pins.add", 200, {"ok": False, "error": "ratelimited"}) == []
    assert spec.check_response("pins.add", 200, {"ok": False, "error": "name_taken"}) == [
        "pins.add: error 'name_taken' is not one Slack lists for this method"
    ]
    problems = spec.check_response("chat.postMessage", 200, {"ok": True, "channel": "C012AB3CD"})
    assert "chat.postMessage: /: missing required 'ts'" in problems
    bad_ts = {"ok": True, "channel": "C012AB3CD", "ts": "12.5", "message": {}}
    assert any("does not match" in p for p in spec.check_response("chat.postMessage", 200, bad_ts))


def test_known_schema_gaps_name_real_methods(spec: SlackSpec) -> None:
    for method, _, reason in KNOWN_SCHEMA_GAPS:
        assert spec.methods[method].success_schema is not None
        assert reason


def test_the_spec_is_vendored_and_a_folder_can_be_given(tmp_path: Path) -> None:
    assert (slack_data_dir() / "slack_web_openapi_v2.json").is_file()
    assert (slack_data_dir() / "LICENSE.slack-api-specs").is_file()
    folder = tmp_path / "slack"
    folder.mkdir()
    (folder / "slack_web_openapi_v2.json").write_text(json.dumps({"paths": {}}))
    (folder / "methods.txt").write_text(
        "## pins.add | Tier 2: 20+ per minute | bot scopes: []\n"
        "   errors: already_pinned\n   args: *channel, timestamp\n"
    )
    small = load_spec(folder)
    assert set(small.methods) == {"pins.add", "bookmarks.list", "apps.connections.open"}


async def test_strict_mode_refuses_an_unknown_argument_loudly(
    client: AsyncWebClient, fake: FakeSlack
) -> None:
    channel = fake.channel_by_name("incidents").id

    failure = await slack_error(client.chat_postMessage(channel=channel, text="hi", colour="red"))

    assert failure.response.status_code == 400
    assert failure.response["error"] == STRICT_ERROR
    assert "unknown argument 'colour'" in failure.response["problems"][0]
    assert fake.messages(channel) == []
    assert len(fake.client_violations) == 1
    with pytest.raises(AssertionError, match="colour"):
        fake.assert_clean()
    fake.client_violations.clear()


async def test_strict_mode_refuses_a_missing_required_argument(fake: FakeSlack) -> None:
    channel = fake.channel_by_name("incidents").id
    headers = {"Authorization": f"Bearer {BOT_TOKEN}"}
    async with httpx.AsyncClient(base_url=fake.base_url) as http:
        response = await http.post(
            "conversations.invite", data={"channel": channel}, headers=headers
        )

    assert response.status_code == 400
    assert response.json()["problems"] == [
        "conversations.invite: missing required argument 'users'"
    ]
    assert fake.client_violations == response.json()["problems"]
    fake.client_violations.clear()


async def test_without_strict_mode_slack_ignores_unknown_arguments(
    client: AsyncWebClient, fake: FakeSlack
) -> None:
    fake.strict = False
    channel = fake.channel_by_name("incidents").id

    response = await client.chat_postMessage(channel=channel, text="hi", colour="red")

    assert response["ok"] is True
    assert fake.client_violations == []
