"""Alert and user text never becomes a mention, a broadcast or a disguised link in Slack.

Every card, message and modal builder is fed hostile text (``<!channel>``, ``<@U…>``,
``<!subteam^…>``, ``<https://evil.example|click here>``…) and the control sequences Slack would
act on are read from the payload the way the fake Slack reads them: the only ones left are
those the builders make from data (a mention of an assigned person, a date, a link to a URL
given as a link). End to end, a hostile alert goes through the real webhook into the real app
and the fake records what it received in the incident and broadcast channels.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.runbooks.engine import Pending
from bot.runbooks.grading import Grade
from bot.runbooks.results import StepResult
from bot.store.models import TimelineEvent
from handlers.slack import blocks
from tests.fakes.slack_blocks import control_sequences
from tests.fakes.slack_messages import received_sequences

from .test_blocks import TEXT, VIEWS, WHEN
from .test_e2e import Harness, harness  # noqa: F401  (the e2e fixture)

HOSTILE = (
    "<!channel>",
    "<!here>",
    "<!everyone>",
    "<@U0EVIL0001>",
    "<@W0EVIL0002|boss>",
    "<!subteam^S0EVIL0001|@oncall>",
    "<https://evil.example|click here>",
    "<http://evil.example>",
    "<mailto:x@evil.example|support>",
    "&lt;!channel&gt;",
)
#: Hostile text: arbitrary text with the sequences above mixed in.
EVIL = st.lists(st.one_of(TEXT, st.sampled_from(HOSTILE)), min_size=1, max_size=6).map("".join)
PROPERTY = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
OURS = re.compile(r"<!date\^[0-9]+\^\{date_short_pretty\} \{time\}\|[^<>|]+>")


def assert_nothing_from_input(*payload: Any, people: set[str] = frozenset()) -> None:  # type: ignore[assignment]
    """No ``<!…>``, ``<@…>`` or ``<http…>`` in the payload that the input put there."""
    for part in payload:
        found = control_sequences(part) if isinstance(part, str) else control_sequences(None, part)
        for pointer, sequence in found:
            if sequence.startswith("<!"):
                assert OURS.fullmatch(sequence), (pointer, sequence)
            elif sequence.startswith("<@"):
                assert sequence[2:-1] in people, (pointer, sequence)
            elif sequence.startswith("<#"):
                raise AssertionError(f"a channel reference from input: {pointer} {sequence}")
            else:  # a link: made from a URL given as a URL, never from text
                assert sequence not in HOSTILE, (pointer, sequence)
                assert not sequence.endswith(("|click here>", "|support>")), (pointer, sequence)


def _people(view: Any) -> set[str]:
    return {str(p).strip() for p in [*view.roles.values(), view.acknowledged_by] if p}


@PROPERTY
@given(view=VIEWS, title=EVIL, summary=EVIL, impact=EVIL)
def test_no_card_or_modal_turns_input_into_a_mention(
    view: Any, title: str, summary: str, impact: str
) -> None:
    from dataclasses import replace

    alerts = tuple(replace(a, summary=summary, name=title) for a in view.alerts)
    view = replace(view, title=title, impact=impact, severity_reason=summary, alerts=alerts)
    people = _people(view)
    assert_nothing_from_input(blocks.card_blocks(view), blocks.card_text(view), people=people)
    assert_nothing_from_input(blocks.reminder_blocks(view, overdue_minutes=5), people=people)
    for modal in (
        blocks.update_modal(view, prefill={"progress": summary, "eta": title}),
        blocks.resolve_modal(view, summary=summary),
    ):
        assert_nothing_from_input(modal["blocks"], people=people)


@PROPERTY
@given(text=EVIL, actor=st.from_regex(r"U0OK[A-Z0-9]{4}", fullmatch=True), when=WHEN)
def test_no_message_help_error_or_timeline_turns_input_into_a_mention(
    text: str, actor: str, when: datetime
) -> None:
    assert_nothing_from_input(blocks.message_blocks(text), blocks.fallback(text))
    assert_nothing_from_input(blocks.help_blocks(text), blocks.error_blocks(text, text))
    event = TimelineEvent(incident_id=1, at=when, kind=text, actor=actor, text=text)
    assert_nothing_from_input(blocks.timeline_blocks("INC-1", [event]), people={actor})
    steps = [("book", "step", text)]
    assert_nothing_from_input(blocks.runbook_blocks(text, "INC-1", steps))


@PROPERTY
@given(
    title=EVIL,
    value=EVIL,
    cell=EVIL,
    status=st.sampled_from(["pending", "approved", "cancelled"]),
    requester=st.from_regex(r"U0OK[A-Z0-9]{4}", fullmatch=True),
)
def test_no_pending_request_turns_input_into_a_mention(
    title: str, value: str, cell: str, status: str, requester: str
) -> None:
    preview = StepResult(
        runbook="book",
        step="peek",
        title=title,
        kind="postgres",
        mode="diagnostic",
        target="main",
        params={"q": value},
        grade=Grade.YELLOW,
        summary=cell,
        columns=["query", cell[:40] or "c"],
        rows=[[cell, value]],
        reason=value,
        duration_ms=3,
        error=None,
        output_digest="",
    )
    pending = Pending(
        run_id=7,
        incident="INC-1",
        runbook="book",
        step="act",
        title=title,
        params={"reason": value},
        requested_by=requester,
        two_person=True,
        approved_by=[requester] if status == "approved" else [],
        status=status,
        expires_at=datetime(2026, 1, 1, tzinfo=UTC),
        preview=preview,
        cancelled_by=requester if status == "cancelled" else None,
    )
    rendered = blocks.pending_blocks(pending)
    assert_nothing_from_input(rendered, blocks.pending_fallback(pending), people={requester})
    assert_nothing_from_input(blocks.approved_text(pending, requester), people={requester})
    actions = [e["action_id"] for b in rendered if b["type"] == "actions" for e in b["elements"]]
    if status == "cancelled":
        assert actions == []
    else:
        assert actions[-1] == blocks.RUNBOOK_CANCEL


def test_our_own_formatting_still_works() -> None:
    # A mention made from a role assignment, a bare channel reference the core writes, bold.
    assert blocks.core_text("Join <#C0ABC123>. *bold*") == "Join <#C0ABC123>. *bold*"
    assert blocks.core_text("<#C0ABC123|general> <@U0ALICE001>") == (
        "&lt;#C0ABC123|general&gt; &lt;@U0ALICE001&gt;"
    )
    # A labelled link from an alert shows where it really goes.
    assert blocks.escape("see <https://evil.example|click here>") == (
        "see click here (https://evil.example)"
    )
    assert blocks.escape("<https://evil.example>") == "&lt;https://evil.example&gt;"


HOSTILE_TITLE = (
    "<!channel> <!here> <!everyone> <@U0ALICE001> <!subteam^S0ONCALL01|@oncall> "
    "pool at 97% <https://evil.example|click here> & rising"
)


def _hostile_alert() -> dict[str, Any]:
    return {
        "version": "4",
        "groupKey": '{}:{alertname="PoolExhausted"}',
        "status": "firing",
        "receiver": "warroom",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://am",
        "truncatedAlerts": 0,
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "PoolExhausted", "severity": "critical"},
                "annotations": {"summary": HOSTILE_TITLE, "description": HOSTILE_TITLE},
                "startsAt": "2026-11-26T09:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus/graph",
                "fingerprint": "evil1",
            }
        ],
    }


def test_a_hostile_alert_reaches_slack_only_escaped(harness: Harness) -> None:  # noqa: F811
    fake = harness.fake
    answer = harness.client.post(
        "/webhooks/alertmanager",
        content=json.dumps(_hostile_alert()),
        headers={"content-type": "application/json"},
    )
    assert answer.status_code == 200
    (key,) = answer.json()["opened"]
    channel = harness.wait(
        "the channel",
        lambda: next(
            (c for c in fake.workspace.channels.values() if c.name.startswith("inc-")), None
        ),
    )
    harness.wait("the card to be pinned", lambda: fake.pins(channel.id))
    initial = harness.wait(
        "the initial message",
        lambda: [m for m in fake.messages(channel.id) if m.text.startswith("INCIDENT:")],
    )[0]
    broadcast = fake.channel_by_name("incidents").id
    announced = harness.wait(
        "the announcement", lambda: [m for m in fake.messages(broadcast) if key in m.text]
    )[0]

    # Shown as text, escaped: readers see the alert's words, nobody is notified.
    shown = "&lt;!channel&gt; &lt;!here&gt; &lt;!everyone&gt; &lt;@U0ALICE001&gt;"
    for message in (initial, announced, fake.pins(channel.id)[0]):
        everything = message.text + json.dumps(message.blocks)
        assert shown in everything, everything
        assert "click here (https://evil.example)" in everything
        assert "&amp; rising" in everything
    # Our own formatting still works: the announcement links the incident's channel.
    assert f"<#{channel.id}>" in json.dumps(announced.blocks)
    assert f"<#{channel.id}>" in announced.text

    received = received_sequences(fake.workspace)
    assert received, "the fake records what it receives"
    mine = [r for r in received if r.channel in (channel.id, broadcast)]
    assert [r for r in mine if r.notifies] == []
    assert [r for r in mine if "evil.example" in r.sequence] == []
    assert {r.sequence for r in mine} <= {f"<#{channel.id}>"} | {
        r.sequence for r in mine if r.sequence.startswith(("<!date^", "<http://prometheus"))
    }


def test_command_replies_escape_alert_text(harness: Harness) -> None:  # noqa: F811
    general = harness.fake.channel_by_name("general").id
    title = "DB down <!channel> <@U0EVIL> <https://evil.example|click here>"
    assert harness.command(f"declare {title}", channel=general).status_code == 200
    harness.wait("the declare reply", lambda: harness.fake.responses)
    before = len(harness.fake.responses)
    assert harness.command("list", channel=general).status_code == 200
    listed = harness.wait("the list reply", lambda: harness.fake.responses[before:])[-1]
    assert "DB down &lt;!channel&gt;" in listed["text"]
    for raw in ("<!channel>", "<@U0EVIL>", "<https://evil.example"):
        assert raw not in json.dumps(listed)


def test_a_reply_keeps_only_the_mentions_the_core_made() -> None:
    text = "INC-0001 acknowledged by <@U012ALICE>. Title: <@U0EVIL> <!here>"
    out = blocks.reply_text(text, ("U012ALICE",))
    assert "<@U012ALICE>" in out
    assert "<@U0EVIL>" not in out
    assert "&lt;@U0EVIL&gt;" in out
    assert "<!here>" not in out
