"""Block Kit rendering: what the card and forms show, and that Slack would accept every one.

Every block list goes through the fake Slack's validator (``message_block_errors``) and every
modal through ``view_errors``; properties feed arbitrary alert and user text through them.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.commands.parse import HELP, TOP_USAGE, USAGE, help_text
from bot.incidents.card import AlertLine, CardView
from bot.incidents.severity import P0_P3, P1_P4
from bot.store.models import Incident, TimelineEvent
from bot.templating import Templates
from handlers.slack import blocks
from handlers.slack.blocks import (
    ACK,
    POST_UPDATE,
    REOPEN,
    RESOLVE,
    RESOLVE_MODAL,
    RUN_DIAGNOSTICS,
    SNOOZE,
    UPDATE_MODAL,
    card_blocks,
    card_text,
    error_blocks,
    escape,
    help_blocks,
    message_blocks,
    parse_snooze,
    read_resolve_submission,
    read_update_submission,
    reminder_blocks,
    resolve_modal,
    timeline_blocks,
    truncate,
    update_modal,
)
from tests.fakes.slack_blocks import message_block_errors, view_errors

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
EPOCH = int(T0.timestamp())
GRAFANA = "https://grafana.example.com/d/checkout?orgId=1&var-env=prod"


def alert(n: int, status: str = "firing", **links: str) -> AlertLine:
    return AlertLine(
        name=f"HighErrorRate{n}",
        summary=f"5xx ratio > 5% on checkout-{n}",
        status=status,
        count=n + 1,
        links=links,
    )


def open_view(**changes: Any) -> CardView:
    view = CardView(
        key="INC-0042",
        title="Checkout is failing",
        severity="P1",
        severity_label="Critical",
        severity_reason="rule checkout-5xx: error ratio above 5% for 5 min",
        status="investigating",
        impact="Customers cannot pay & orders < 10% of normal",
        service="checkout",
        declared_at=T0 + timedelta(minutes=3),
        detected_at=T0,
        acknowledged_at=None,
        acknowledged_by=None,
        resolved_at=None,
        roles={"commander": "U012ABC", "communications": "bob", "scribe": "W0SCRIBE"},
        alerts_firing=3,
        alerts_resolved=1,
        alerts_total_notifications=57,
        alerts=(
            alert(0, generator=GRAFANA, runbook="https://wiki.example.com/rb/checkout"),
            alert(1, generator="javascript:alert(1)"),
            alert(2, dashboard="ftp://files.example.com/x"),
            alert(3, status="resolved"),
            alert(4),
            alert(5),
            alert(6),
            alert(7),
        ),
        links={"dashboard": "https://grafana.example.com/d/overview"},
        runbook=("Checkout runbook", "https://wiki.example.com/rb/checkout"),
        page_url="https://warroom.example.com/incidents/INC-0042",
    )
    return dataclasses.replace(view, **changes)


def acknowledged_view(**changes: Any) -> CardView:
    return open_view(
        acknowledged_at=T0 + timedelta(minutes=5), acknowledged_by="U0ALICE", **changes
    )


def resolved_view(**changes: Any) -> CardView:
    return acknowledged_view(
        status="resolved", resolved_at=T0 + timedelta(hours=2), alerts_firing=0, **changes
    )


# -- looking inside the blocks -----------------------------------------------------------------


def texts(obj: Any) -> Iterator[str]:
    """Every string Slack renders as text (``text`` of text objects), anywhere in ``obj``."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key == "text" and isinstance(value, str):
                yield value
            else:
                yield from texts(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from texts(value)


def text_objects(obj: Any) -> Iterator[dict[str, Any]]:
    if isinstance(obj, dict):
        if obj.get("type") in ("mrkdwn", "plain_text"):
            yield obj
        for value in obj.values():
            yield from text_objects(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from text_objects(value)


def everything(obj: Any) -> str:
    return "\n".join(texts(obj))


def buttons(rendered: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        element["action_id"]: element
        for block in rendered
        if block["type"] == "actions"
        for element in block["elements"]
    }


def fields(rendered: list[dict[str, Any]]) -> list[str]:
    return [f["text"] for block in rendered for f in block.get("fields", [])]


def field(rendered: list[dict[str, Any]], label: str) -> str:
    (value,) = [f.split("\n", 1)[1] for f in fields(rendered) if f.startswith(f"*{label}*\n")]
    return value


OURS = re.compile(
    r"<(?:@[UW][A-Z0-9]+"
    r"|!date\^[0-9]+\^\{date_short_pretty\} \{time\}\|[^<>|]+"
    r"|https?://[^\s<>|]+\|[^<>|]+)>"
)


def assert_safe(obj: Any) -> None:
    """Only the ``<…>`` built on purpose; no raw ``&``; mrkdwn never auto-parsed."""
    for text in texts(obj):
        leftover = OURS.sub("", text)
        assert "<" not in leftover, text
        assert ">" not in leftover, text
        assert not re.search(r"&(?!amp;|lt;|gt;)", text), text
        assert text.strip(), "an empty text object"
        for bad in ("<!channel>", "<!here>", "<!everyone>", "<script"):
            assert bad not in text
    for obj_ in text_objects(obj):
        if obj_["type"] == "mrkdwn":
            assert obj_.get("verbatim") is True, obj_


def assert_valid_message(rendered: list[dict[str, Any]]) -> None:
    assert message_block_errors(rendered) == []
    assert 1 <= len(rendered) <= 50
    assert_safe(rendered)


def assert_valid_view(view: dict[str, Any]) -> None:
    assert view_errors(view) == []
    assert_safe(view["blocks"])
    assert_safe([view["title"], view["submit"], view["close"]])


# -- escape and truncate ----------------------------------------------------------------------


def test_escape_turns_the_three_control_characters_into_entities() -> None:
    assert escape("a & b <!channel> c > d") == "a &amp; b &lt;!channel&gt; c &gt; d"
    assert escape("<script>") == "&lt;script&gt;"


def test_escape_keeps_what_slack_already_escaped() -> None:
    slack_sent = "R&amp;D &lt;3 &gt; ops"  # how Slack delivers "R&D <3 > ops" typed by a person
    assert escape(slack_sent) == slack_sent
    assert escape("&ampersand &lt &amp") == "&amp;ampersand &amp;lt &amp;amp"
    assert escape(escape("x < y & z")) == escape("x < y & z")


def test_truncate_adds_an_ellipsis_within_the_limit() -> None:
    assert truncate("short", 10) == "short"
    assert truncate("exactly10!", 10) == "exactly10!"
    assert truncate("a" * 20, 10) == "a" * 9 + "…"
    assert len(truncate("b" * 5000, 3000)) == 3000


def test_truncate_never_cuts_an_entity_in_half() -> None:
    cut = truncate("abcdef&amp;ghijklmnop", 10)
    assert cut == "abcdef…"
    assert truncate("ab&lt;cdefghij", 6) == "ab…"


def test_truncate_refuses_a_limit_below_one() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        truncate("x", 0)


# -- the card ---------------------------------------------------------------------------------


def test_open_card_shows_key_severity_reason_commander_and_alerts() -> None:
    rendered = card_blocks(open_view())
    assert_valid_message(rendered)

    header = rendered[0]
    assert header["type"] == "header"
    assert header["text"]["text"] == "🔴 INC-0042 · Checkout is failing"
    assert field(rendered, "Severity") == "P1 · Critical"
    assert field(rendered, "Status") == "Investigating"
    assert field(rendered, "Commander") == "<@U012ABC>"
    assert field(rendered, "Service") == "checkout"
    assert field(rendered, "Communications") == "bob"
    assert field(rendered, "Scribe") == "<@W0SCRIBE>"
    assert field(rendered, "Acknowledged") == "_not yet_"
    why = [b for b in rendered if b["type"] == "context" and "why:" in everything(b)]
    assert everything(why) == "why: rule checkout-5xx: error ratio above 5% for 5 min"
    assert rendered.index(why[0]) == 2  # right under the fields, severity first among them

    text = everything(rendered)
    assert "*Impact*\nCustomers cannot pay &amp; orders &lt; 10% of normal" in text
    assert "*Alerts:* 3 firing · 1 resolved · 57 notifications" in text
    assert "🔥 *HighErrorRate0* — 5xx ratio &gt; 5% on checkout-0" in text
    assert "✅ *HighErrorRate3*" in text
    assert "HighErrorRate4" in text
    assert "HighErrorRate5" not in text  # five alerts shown
    assert "_…and 3 more_" in text
    assert f"<{GRAFANA.replace('&', '&amp;')}|generator>" in text
    assert "<https://wiki.example.com/rb/checkout|runbook>" in text
    assert "javascript:" not in text
    assert "ftp://" not in text
    assert "📖 <https://wiki.example.com/rb/checkout|Checkout runbook>" in text
    assert "🌐 <https://warroom.example.com/incidents/INC-0042|Incident page>" in text
    assert "<https://grafana.example.com/d/overview|Dashboard>" in text


def test_open_card_offers_every_action_with_the_key_as_value() -> None:
    found = buttons(card_blocks(open_view()))
    assert list(found) == [ACK, RUN_DIAGNOSTICS, POST_UPDATE, RESOLVE]
    assert {b["value"] for b in found.values()} == {"INC-0042"}
    resolve = found[RESOLVE]
    assert resolve["style"] == "danger"
    assert resolve["confirm"]["title"]["text"] == "Resolve INC-0042?"
    assert {"title", "text", "confirm", "deny"} <= set(resolve["confirm"])


def test_acknowledged_card_hides_acknowledge_and_says_who() -> None:
    rendered = card_blocks(acknowledged_view())
    assert_valid_message(rendered)
    assert list(buttons(rendered)) == [RUN_DIAGNOSTICS, POST_UPDATE, RESOLVE]
    acked = field(rendered, "Acknowledged")
    assert acked.startswith("by <@U0ALICE> · <!date^")


def test_resolved_card_is_green_and_offers_only_reopen() -> None:
    rendered = card_blocks(resolved_view())
    assert_valid_message(rendered)
    assert rendered[0]["text"]["text"].startswith("✅ INC-0042")
    found = buttons(rendered)
    assert list(found) == [REOPEN]
    assert found[REOPEN]["value"] == "INC-0042"
    assert field(rendered, "Resolved").startswith("<!date^")


def test_dates_are_slack_date_tokens_with_a_fallback_in_the_given_zone() -> None:
    started = field(card_blocks(open_view()), "Started")
    assert started == (
        f"Detected <!date^{EPOCH}^{{date_short_pretty}} {{time}}|2026-11-26T10:00+00:00>\n"
        f"Declared <!date^{EPOCH + 180}^{{date_short_pretty}} {{time}}|2026-11-26T10:03+00:00>"
    )
    paris = field(card_blocks(open_view(detected_at=None), tz=ZoneInfo("Europe/Paris")), "Started")
    assert paris == (
        f"Declared <!date^{EPOCH + 180}^{{date_short_pretty}} {{time}}|2026-11-26T11:03+01:00>"
    )


@pytest.mark.parametrize(
    ("label", "emoji"),
    [("Critical", "🔴"), ("High", "🟠"), ("Medium", "🟡"), ("Low", "🔵"), ("Whatever", "🔵")],
)
def test_header_colour_follows_the_severity_label(label: str, emoji: str) -> None:
    rendered = card_blocks(open_view(severity_label=label))
    assert rendered[0]["text"]["text"].startswith(f"{emoji} INC-0042")
    assert card_text(open_view(severity_label=label)).startswith(emoji)


def test_header_colour_follows_the_rank_in_the_scheme_when_given() -> None:
    view = open_view(severity="P1", severity_label="Sev one")
    assert card_blocks(view)[0]["text"]["text"].startswith("🔵")
    assert card_blocks(view, scheme=P1_P4)[0]["text"]["text"].startswith("🔴")
    assert card_blocks(view, scheme=P0_P3)[0]["text"]["text"].startswith("🟠")
    unknown = open_view(severity="SEV9")
    assert card_blocks(unknown, scheme=P1_P4)[0]["text"]["text"].startswith("🔵")


@pytest.mark.parametrize(
    ("commander", "shown"),
    [
        ("U012ABC", "<@U012ABC>"),
        ("W0ENTERPRISE", "<@W0ENTERPRISE>"),
        ("alice", "alice"),
        ("<!channel> & co", "&lt;!channel&gt; &amp; co"),
        (None, "_unassigned_"),
        ("   ", "_unassigned_"),
    ],
)
def test_commander_is_a_mention_a_name_or_unassigned(commander: str | None, shown: str) -> None:
    roles = {} if commander is None else {"commander": commander}
    rendered = card_blocks(open_view(roles=roles))
    assert_valid_message(rendered)
    assert field(rendered, "Commander") == shown


def test_many_roles_fit_in_ten_fields() -> None:
    roles = {"commander": "U012ABC"} | {f"role_{n}": f"U0PERSON{n}" for n in range(25)}
    rendered = card_blocks(open_view(roles=roles))
    assert_valid_message(rendered)
    assert field(rendered, "Role 0") == "<@U0PERSON0>"
    assert field(rendered, "More roles") == "+16 more"


def test_card_without_alerts_or_links_says_so() -> None:
    view = open_view(
        alerts=(),
        alerts_firing=0,
        alerts_resolved=0,
        alerts_total_notifications=0,
        links={},
        runbook=None,
        page_url=None,
        impact="",
        severity_reason="",
        service=None,
        roles={},
    )
    rendered = card_blocks(view)
    assert_valid_message(rendered)
    text = everything(rendered)
    assert "*Alerts:* none" in text
    assert "*Impact*\n_not yet known_" in text
    assert "why:" not in text
    assert not any(b["type"] == "context" for b in rendered)


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "ftp://example.com/x",
        "http://",
        "https://exa mple.com/",
        "https://example.com/\nsecond-line",
        "https://[::1/x",
        "https://example.com/" + "a" * 5000,
        "mailto:ops@example.com",
        "",
    ],
)
def test_odd_links_are_dropped(url: str) -> None:
    view = open_view(
        alerts=(alert(0, generator=url),), links={"dashboard": url}, page_url=url, runbook=None
    )
    rendered = card_blocks(view)
    assert_valid_message(rendered)
    assert "|generator>" not in everything(rendered)
    assert "Incident page" not in everything(rendered)


def test_link_urls_and_labels_cannot_break_out_of_the_link() -> None:
    url = "https://example.com/a|b>c<!channel>?x=1&y=2"
    view = open_view(alerts=(alert(0, **{"gen|era>tor": url}),), runbook=("Run|book > <b>", url))
    rendered = card_blocks(view)
    assert_valid_message(rendered)
    text = everything(rendered)
    safe = "https://example.com/a%7Cb%3Ec%3C!channel%3E?x=1&amp;y=2"
    # A link name an alert chose is shown beside the real address, which is the link's text.
    assert f"gen∣era&gt;tor: <{safe}|{safe.removeprefix('https://')}>" in text
    assert f"<{safe}|Run∣book &gt; &lt;b&gt;>" in text
    shouting = card_blocks(open_view(page_url="HTTPS://Example.com/Page"))
    assert "🌐 <https://Example.com/Page|Incident page>" in everything(shouting)


def test_a_huge_hostile_title_still_makes_a_valid_card() -> None:
    title = "<script>alert('x')</script> <!channel> & " * 250  # 10,000 characters
    view = open_view(title=title, impact=title * 2, severity_reason=title, service=title)
    rendered = card_blocks(view)
    assert_valid_message(rendered)
    assert len(rendered[0]["text"]["text"]) <= 150
    assert rendered[0]["text"]["text"].endswith("…")


def test_card_text_is_one_escaped_line() -> None:
    text = card_text(open_view(title="DB <down>\nand & out"))
    assert text == "🔴 INC-0042 · P1 · Critical · Investigating · DB &lt;down&gt; and &amp; out"
    assert card_text(resolved_view()).startswith("✅ INC-0042 · P1 · Critical · Resolved")
    assert "\n" not in card_text(open_view(title="x\n" * 5000))
    assert len(card_text(open_view(title="x" * 5000))) <= 300


# -- messages ---------------------------------------------------------------------------------


def incident(**changes: Any) -> Incident:
    values: dict[str, Any] = {
        "key": "INC-0042",
        "number": 42,
        "title": "Checkout <down> & R&amp;D sad",
        "severity": "P1",
        "status": "identified",
        "impact": "Customers cannot pay",
        "created_by": "U012ABC",
        "declared_at": T0,
        "updated_at": T0,
        "resolved_at": T0 + timedelta(hours=2),
        "root_cause": "A bad deploy",
    }
    return Incident(**(values | changes))


def test_message_blocks_render_the_runbook_update_template_readably() -> None:
    text = Templates().render(
        "messages/update.txt.j2",
        incident=incident(),
        progress="Rolled back <v2.3>",
        impact=None,
        eta="30 min",
        next_update=T0 + timedelta(minutes=30),
    )
    rendered = message_blocks(text)
    assert_valid_message(rendered)
    assert len(rendered) == 1
    assert rendered[0]["text"]["text"] == (
        "*INCIDENT UPDATE:* Checkout &lt;down&gt; &amp; R&amp;D sad\n"
        "*Status:* Identified\n"
        "*Progress:* Rolled back &lt;v2.3&gt;\n"
        "*Current Impact:* Customers cannot pay\n"
        "*ETA:* 30 min\n"
        "*Next Update:* 2026-11-26 10:30 UTC"
    )
    assert "```" not in everything(rendered)


@pytest.mark.parametrize("name", ["initial", "update", "resolution"])
def test_message_blocks_accept_every_runbook_template(name: str) -> None:
    text = Templates().render(
        f"messages/{name}.txt.j2",
        incident=incident(),
        progress=None,
        impact=None,
        eta=None,
        next_update=None,
        postmortem_date=None,
    )
    rendered = message_blocks(text)
    assert_valid_message(rendered)
    assert everything(rendered).startswith("*INCIDENT")


def test_long_messages_are_split_into_sections_and_capped_at_fifty() -> None:
    line = "Progress: " + "x" * 980  # 992 characters once the label is bold
    rendered = message_blocks("\n".join([line] * 10))
    assert_valid_message(rendered)
    assert len(rendered) == 4  # three lines of 1000 characters fit a section of 3000
    one_line = message_blocks("y & " * 2000)  # 8,000 characters, 16,000 escaped
    assert_valid_message(one_line)
    assert len(one_line) == 6
    assert "".join(everything(b) for b in one_line) == ("y &amp; " * 2000).strip()
    huge = message_blocks("z" * 400_000)
    assert_valid_message(huge)
    assert len(huge) == 50
    assert huge[-1]["text"]["text"].endswith("_…the rest is too long to show here._")


def test_blank_messages_have_no_blocks() -> None:
    assert message_blocks("") == []
    assert message_blocks(" \n\t\n") == []


def test_help_blocks_show_the_help_with_placeholders_escaped() -> None:
    rendered = help_blocks(help_text())
    assert_valid_message(rendered)
    text = everything(rendered)
    assert "`/incident declare &lt;title&gt; [sev:P1]" in text
    assert len(text.splitlines()) == len(HELP) + 2
    assert_valid_message(help_blocks(help_text("declare")))


def test_error_blocks_show_the_message_and_usage() -> None:
    rendered = error_blocks("`<#C123|general>` is a channel; name a person.", USAGE["lead"])
    assert_valid_message(rendered)
    assert rendered[0]["text"]["text"] == ("⚠️ `&lt;#C123|general&gt;` is a channel; name a person.")
    assert rendered[1]["text"]["text"] == "*Usage:* `/incident lead [key] @person`"
    assert error_blocks("x", TOP_USAGE)[1]["text"]["text"].startswith("*Usage:* /incident &lt;")
    assert len(error_blocks("Nope.", None)) == 1
    assert_valid_message(error_blocks("<!here>" * 2000, "<x>" * 2000))


# -- reminders --------------------------------------------------------------------------------


def test_reminder_names_the_delay_the_interval_and_the_commander() -> None:
    rendered = reminder_blocks(open_view(), overdue_minutes=47, scheme=P1_P4)
    assert_valid_message(rendered)
    assert rendered[0]["text"]["text"] == (
        "⏰ *INC-0042* has had no update for 47 min (P1 updates every 30 min).\n"
        "<@U012ABC>, please post an update or snooze this reminder."
    )
    found = buttons(rendered)
    assert list(found) == [POST_UPDATE, SNOOZE]
    assert found[POST_UPDATE]["value"] == "INC-0042"
    assert parse_snooze(found[SNOOZE]["value"]) == ("INC-0042", 30)
    assert found[SNOOZE]["text"]["text"] == "Snooze 30 min"


def test_reminder_without_scheme_or_commander() -> None:
    rendered = reminder_blocks(open_view(roles={}), overdue_minutes=125, snooze_minutes=60)
    assert_valid_message(rendered)
    text = everything(rendered)
    assert "has had no update for 2 h 5 min." in text
    assert "No commander is assigned" in text
    assert parse_snooze(buttons(rendered)[SNOOZE]["value"]) == ("INC-0042", 60)
    p2 = reminder_blocks(open_view(severity="P2"), overdue_minutes=61, scheme=P1_P4)
    assert "(P2 updates every 1 h)" in everything(p2)


def test_reminder_refuses_nonsense_durations() -> None:
    with pytest.raises(ValueError, match="negative"):
        reminder_blocks(open_view(), overdue_minutes=-1)
    with pytest.raises(ValueError, match="snooze_minutes"):
        reminder_blocks(open_view(), overdue_minutes=5, snooze_minutes=0)


@pytest.mark.parametrize(
    ("value", "parsed"),
    [("INC-0042|30", ("INC-0042", 30)), ("INC-7|1440", ("INC-7", 1440)), ("a|b|5", ("a|b", 5))],
)
def test_parse_snooze(value: str, parsed: tuple[str, int]) -> None:
    assert parse_snooze(value) == parsed


@pytest.mark.parametrize(
    "value",
    [
        "INC-0042",
        "INC-0042|",
        "|30",
        " |30",
        "INC-0042|thirty",
        "INC-0042|-5",
        "INC-0042|0",
        "INC-0042|1441",
        "INC-0042|3.5",
        "INC-0042|³",
        "INC-0042|999999",
        "",
    ],
)
def test_parse_snooze_rejects_bad_values(value: str) -> None:
    with pytest.raises(ValueError, match="snooze"):
        parse_snooze(value)


# -- the timeline -----------------------------------------------------------------------------


def event(
    minutes: int, kind: str = "note", actor: str = "U012ABC", text: str = ""
) -> TimelineEvent:
    return TimelineEvent(
        incident_id=1,
        at=T0 + timedelta(minutes=minutes),
        kind=kind,
        actor=actor,
        text=text or f"event at +{minutes} min",
    )


def test_timeline_lists_events_oldest_first_in_the_given_zone() -> None:
    events = [
        event(90, "status", "alice", "identified"),
        event(0, "declared", "alertmanager", "Opened from <alert> & more"),
        event(24 * 60, "note", "U0BOB", "still <!here>?"),
    ]
    rendered = timeline_blocks("INC-0042", events, tz=ZoneInfo("Europe/Paris"))
    assert_valid_message(rendered)
    assert rendered[0]["text"]["text"] == "*Timeline of INC-0042* · 3 events"
    lines = everything(rendered[1:]).splitlines()
    assert lines == [
        "*Thu 26 Nov 2026*",
        "`11:00` *declared* · alertmanager: Opened from &lt;alert&gt; &amp; more",
        "`12:30` *status* · alice: identified",
        "*Fri 27 Nov 2026*",
        "`11:00` *note* · <@U0BOB>: still &lt;!here&gt;?",
    ]


def test_a_long_timeline_keeps_the_newest_events_within_fifty_blocks() -> None:
    events = [event(n, text=f"{n:03d} " + "z" * 990) for n in range(200)]
    rendered = timeline_blocks("INC-0042", events, tz=None)
    assert_valid_message(rendered)
    assert len(rendered) == 50
    assert rendered[0]["text"]["text"] == "*Timeline of INC-0042* · 200 events"
    note = everything(rendered[1])
    left_out = int(note.split()[0])
    assert note == f"{left_out} earlier events left out."
    text = everything(rendered[2:])
    assert "`13:19` *note* · <@U012ABC>: 199 z" in text.splitlines()[-1]
    assert f": {left_out:03d} z" in text
    assert f": {left_out - 1:03d} z" not in text


def test_an_empty_timeline_says_so() -> None:
    rendered = timeline_blocks("INC-0042", [], tz=None)
    assert_valid_message(rendered)
    assert everything(rendered) == "*Timeline of INC-0042* · 0 events\nNo events yet."


# -- modals -----------------------------------------------------------------------------------


def block(view: dict[str, Any], block_id: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [b for b in view["blocks"] if b.get("block_id") == block_id]
    (only,) = found
    return only


def test_update_modal_is_prefilled_from_the_incident_and_the_template() -> None:
    view = open_view(status="mitigating", impact="R&amp;D &lt;blocked&gt;")
    prefill = {"progress": "Rolled back", "eta": "14:00 UTC", "next_update": "45 min"}
    modal = update_modal(view, prefill=prefill)
    assert_valid_view(modal)
    assert modal["callback_id"] == UPDATE_MODAL
    assert modal["private_metadata"] == "INC-0042"
    assert modal["title"]["text"] == "Update INC-0042"
    status = block(modal, "status")["element"]
    assert [o["value"] for o in status["options"]] == list(blocks.STATUSES)
    assert status["initial_option"]["value"] == "mitigating"
    assert block(modal, "status")["optional"] is False
    progress = block(modal, "progress")
    assert progress["element"]["initial_value"] == "Rolled back"
    assert progress["element"]["multiline"] is True
    assert progress["optional"] is False
    impact = block(modal, "impact")["element"]
    assert impact["initial_value"] == "R&D <blocked>"  # what the person will see and edit
    assert impact["multiline"] is True
    eta = block(modal, "eta")["element"]
    assert eta["initial_value"] == "14:00 UTC"
    assert eta["multiline"] is False
    next_update = block(modal, "next_update")["element"]
    assert [o["text"]["text"] for o in next_update["options"]] == [
        "15 min",
        "30 min",
        "1 h",
        "2 h",
        "4 h",
    ]
    assert next_update["initial_option"]["value"] == "30"


@pytest.mark.parametrize(
    ("given", "chosen"),
    [
        ("15", "15"),
        ("1 h", "60"),
        ("2h", "120"),
        ("90 minutes", "60"),
        ("100", "120"),
        ("4 hours", "240"),
        ("12 h", "240"),
        ("0", "15"),
        ("soon", None),
        ("10:30 UTC", None),
    ],
)
def test_update_modal_picks_the_nearest_next_update(given: str, chosen: str | None) -> None:
    modal = update_modal(open_view(), prefill={"next_update": given})
    assert_valid_view(modal)
    initial = block(modal, "next_update")["element"].get("initial_option")
    assert (initial or {}).get("value") == chosen


def test_update_modal_without_prefill_for_a_resolved_incident() -> None:
    modal = update_modal(resolved_view(impact=""), prefill={})
    assert_valid_view(modal)
    assert "initial_option" not in block(modal, "status")["element"]
    assert "initial_value" not in block(modal, "impact")["element"]
    assert "initial_option" not in block(modal, "next_update")["element"]


def slack_state(**values: Any) -> dict[str, Any]:
    """``view.state.values`` as Slack sends it: block_id → action_id → the element's state."""
    state: dict[str, Any] = {}
    for name, value in values.items():
        if isinstance(value, list):
            options = [{"text": {"type": "plain_text", "text": v}, "value": v} for v in value]
            state[name] = {name: {"type": "checkboxes", "selected_options": options}}
        elif name in ("status", "next_update"):
            option = (
                None
                if value is None
                else {"text": {"type": "plain_text", "text": value}, "value": value}
            )
            state[name] = {name: {"type": "static_select", "selected_option": option}}
        else:
            state[name] = {name: {"type": "plain_text_input", "value": value}}
    return state


def submitted(modal: dict[str, Any]) -> dict[str, Any]:
    """The ``view.state.values`` Slack sends when the form is submitted untouched."""
    state: dict[str, Any] = {}
    for b in modal["blocks"]:
        if b["type"] != "input":
            continue
        element = b["element"]
        value: dict[str, Any] = {"type": element["type"]}
        if element["type"] == "plain_text_input":
            value["value"] = element.get("initial_value")
        elif element["type"] == "static_select":
            value["selected_option"] = element.get("initial_option")
        else:
            value["selected_options"] = element.get("initial_options", [])
        state[b["block_id"]] = {element["action_id"]: value}
    return state


def test_an_untouched_update_form_reads_back_its_prefill() -> None:
    view = open_view(status="identified", impact="R&amp;D blocked")
    prefill = {"progress": "Rolled back", "eta": "1 h", "next_update": "2 h"}
    assert read_update_submission(submitted(update_modal(view, prefill=prefill))) == {
        "status": "identified",
        "progress": "Rolled back",
        "impact": "R&D blocked",
        "eta": "1 h",
        "next_update": "120",
    }


def test_an_untouched_resolve_form_reads_back_its_prefill() -> None:
    modal = resolve_modal(open_view(), summary="Bad deploy")
    assert read_resolve_submission(submitted(modal)) == {
        "summary": "Bad deploy",
        "root_cause": "",
        "resolution": "",
        "postmortem": True,
    }


def test_read_update_submission() -> None:
    state = slack_state(
        status="monitoring",
        progress=" Rolled back v2.3 \n",
        impact="None now",
        eta=None,
        next_update="60",
    )
    assert read_update_submission(state) == {
        "status": "monitoring",
        "progress": "Rolled back v2.3",
        "impact": "None now",
        "eta": "",
        "next_update": "60",
    }
    bare = read_update_submission(slack_state(status="identified", next_update=None))
    assert bare == {
        "status": "identified",
        "progress": "",
        "impact": "",
        "eta": "",
        "next_update": "",
    }


@pytest.mark.parametrize(
    "state",
    [
        slack_state(status="resolved"),
        slack_state(status=None),
        {},
        slack_state(status="identified", next_update="7"),
    ],
)
def test_read_update_submission_refuses_what_the_form_cannot_send(state: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"status|next_update"):
        read_update_submission(state)


def test_resolve_modal_asks_for_summary_cause_resolution_and_postmortem() -> None:
    modal = resolve_modal(acknowledged_view(), summary="Rolled back &amp; recovered")
    assert_valid_view(modal)
    assert modal["callback_id"] == RESOLVE_MODAL
    assert modal["private_metadata"] == "INC-0042"
    assert modal["submit"]["text"] == "Resolve"
    summary = block(modal, "summary")
    assert summary["optional"] is False
    assert summary["element"]["initial_value"] == "Rolled back & recovered"
    assert block(modal, "root_cause")["optional"] is True
    assert block(modal, "root_cause")["element"]["multiline"] is True
    assert block(modal, "resolution")["element"]["multiline"] is True
    box = block(modal, "postmortem")["element"]
    assert box["type"] == "checkboxes"
    assert box["options"][0]["text"]["text"] == "Schedule a post-mortem"
    assert box["initial_options"] == box["options"]
    unchecked = resolve_modal(acknowledged_view(), postmortem=False)
    assert "initial_options" not in block(unchecked, "postmortem")["element"]


def test_read_resolve_submission() -> None:
    state = slack_state(
        summary="Bad deploy",
        root_cause="Config typo",
        resolution=None,
        postmortem=[blocks.POSTMORTEM],
    )
    assert read_resolve_submission(state) == {
        "summary": "Bad deploy",
        "root_cause": "Config typo",
        "resolution": "",
        "postmortem": True,
    }
    assert read_resolve_submission(slack_state(summary="x", postmortem=[]))["postmortem"] is False
    assert read_resolve_submission({})["postmortem"] is False


def test_modal_titles_fit_even_with_a_long_key() -> None:
    view = open_view(key="INCIDENT-123456789", title="<b>" * 3000)
    update, resolve = update_modal(view, prefill={"progress": "p" * 5000}), resolve_modal(view)
    for modal in (update, resolve):
        assert_valid_view(modal)
        assert modal["private_metadata"] == "INCIDENT-123456789"
    assert update["title"]["text"] == "Update INCIDENT-1234567…"
    assert resolve["title"]["text"] == "Resolve INCIDENT-123456…"
    prefilled = block(update_modal(view, prefill={"progress": "p" * 5000}), "progress")
    assert len(prefilled["element"]["initial_value"]) == 3000


# -- properties: anything an alert or a person can send ------------------------------------

NASTY = st.sampled_from(
    [
        "<script>alert(1)</script>",
        "<!channel>",
        "<!here>",
        "<!everyone>",
        "@channel",
        "&",
        "&amp;",
        "&lt;",
        "&gt;",
        "&am",
        "<@U012ABC>",
        "<https://evil.example|click>",
        "|",
        ">",
        "<",
        "*",
        "_",
        "~",
        "`",
        "```",
        "\n",
        "\r\n",
        "\u2028",
        "é",
        "🔥",
        "\x00",
        " ",
        "\t",
    ]
)
TEXT = st.one_of(
    st.lists(st.one_of(st.text(max_size=30), NASTY), max_size=8).map("".join),
    st.builds(
        lambda piece, n: piece * n, NASTY | st.text(min_size=1, max_size=5), st.integers(1, 4000)
    ),
)
URL = st.one_of(
    TEXT,
    st.sampled_from(
        [
            "javascript:alert(1)",
            "https://x.example/<!channel>",
            "https://a.example/?q=1&r=2|x>y",
            "ftp://x.example",
            "http://",
            " https://ex.example.com ",
            "HTTPS://EX.EXAMPLE/",
            "https://[::1",
        ]
    ),
    st.builds(lambda tail: "https://example.com/" + tail, TEXT),
)
PERSON = st.one_of(st.from_regex(r"[UW][A-Z0-9]{2,10}", fullmatch=True), TEXT)
WHEN = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
ALERTS = st.builds(
    AlertLine,
    name=TEXT,
    summary=TEXT,
    status=st.sampled_from(["firing", "resolved"]) | TEXT,
    count=st.integers(0, 10**9),
    links=st.dictionaries(TEXT, URL, max_size=4),
)
VIEWS = st.builds(
    CardView,
    key=st.sampled_from(["INC-0042", "INC-1"])
    | st.from_regex(r"[A-Z]{1,10}-[0-9]{1,9}", fullmatch=True),
    title=TEXT,
    severity=st.sampled_from(["P0", "P1", "P2", "P3", "P4"]) | TEXT,
    severity_label=st.sampled_from(["Critical", "High", "Medium", "Low"]) | TEXT,
    severity_reason=TEXT,
    status=st.sampled_from([*blocks.STATUSES, "resolved"]) | TEXT,
    impact=TEXT,
    service=st.none() | TEXT,
    declared_at=WHEN,
    detected_at=st.none() | WHEN,
    acknowledged_at=st.none() | WHEN,
    acknowledged_by=st.none() | PERSON,
    resolved_at=st.none() | WHEN,
    roles=st.dictionaries(TEXT, PERSON, max_size=14),
    alerts_firing=st.integers(0, 10**6),
    alerts_resolved=st.integers(0, 10**6),
    alerts_total_notifications=st.integers(0, 10**9),
    alerts=st.lists(ALERTS, max_size=8).map(tuple),
    links=st.dictionaries(TEXT, URL, max_size=12),
    runbook=st.none() | st.tuples(TEXT, URL),
    page_url=st.none() | URL,
)
PROPERTY = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@PROPERTY
@given(view=VIEWS, zone=st.sampled_from([None, ZoneInfo("Europe/Paris"), ZoneInfo("Asia/Kolkata")]))
def test_any_card_is_valid_block_kit_without_injection(
    view: CardView, zone: ZoneInfo | None
) -> None:
    for scheme in (None, P1_P4):
        rendered = card_blocks(view, tz=zone, scheme=scheme)
        assert_valid_message(rendered)
        assert list(buttons(rendered)) in (
            [REOPEN],
            [ACK, RUN_DIAGNOSTICS, POST_UPDATE, RESOLVE],
            [RUN_DIAGNOSTICS, POST_UPDATE, RESOLVE],
        )
        assert rendered[0]["text"]["text"].split(" ", 2)[1] == escape(view.key)
    text = card_text(view)
    assert "\n" not in text
    assert 0 < len(text) <= 300
    assert_safe([{"type": "plain_text", "text": text}])


@PROPERTY
@given(view=VIEWS, overdue=st.integers(0, 10**6), snooze=st.integers(1, 1440))
def test_any_reminder_is_valid_and_its_snooze_parses(
    view: CardView, overdue: int, snooze: int
) -> None:
    rendered = reminder_blocks(view, overdue_minutes=overdue, scheme=P0_P3, snooze_minutes=snooze)
    assert_valid_message(rendered)
    assert parse_snooze(buttons(rendered)[SNOOZE]["value"]) == (view.key, snooze)


@PROPERTY
@given(
    view=VIEWS,
    prefill=st.dictionaries(
        st.sampled_from(["status", "progress", "impact", "eta", "next_update"]), TEXT
    ),
)
def test_any_modal_is_a_valid_view(view: CardView, prefill: dict[str, str]) -> None:
    modal = update_modal(view, prefill=prefill)
    assert_valid_view(modal)
    assert modal["private_metadata"] == view.key
    assert_valid_view(resolve_modal(view, summary=prefill.get("progress", "")))


@PROPERTY
@given(text=TEXT)
def test_any_message_help_or_error_is_valid(text: str) -> None:
    for rendered in (message_blocks(text), help_blocks(text)):
        if text.strip():
            assert_valid_message(rendered)
        else:
            assert rendered == []
    assert_valid_message(error_blocks(text, text))


@PROPERTY
@given(
    events=st.lists(
        st.builds(
            TimelineEvent, incident_id=st.just(1), at=WHEN, kind=TEXT, actor=PERSON, text=TEXT
        ),
        max_size=40,
    ),
    zone=st.sampled_from([None, ZoneInfo("America/New_York")]),
)
def test_any_timeline_is_valid(events: list[TimelineEvent], zone: ZoneInfo | None) -> None:
    rendered = timeline_blocks("INC-0042", events, tz=zone)
    assert_valid_message(rendered)
