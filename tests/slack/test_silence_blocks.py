"""The card's Silence / Unsilence buttons and a silence's preview, as Slack will show them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from bot.errors import UserError
from bot.incidents.card import CardView
from bot.incidents.silences import Matcher, OpenSilence, SilencePlan
from handlers.slack import blocks

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def view(**changes: object) -> CardView:
    base: dict[str, object] = dict(
        key="INC-0007",
        title="Pool exhausted",
        severity="P1",
        severity_label="Critical",
        severity_reason="",
        status="investigating",
        impact="",
        service="db",
        declared_at=T0,
        detected_at=None,
        acknowledged_at=T0,
        acknowledged_by="U0ALICE",
        resolved_at=None,
        roles={"commander": "U0ALICE"},
        alerts_firing=1,
        alerts_resolved=0,
        alerts_total_notifications=3,
        alerts=(),
        silenceable=True,
    )
    base.update(changes)
    return CardView(**base)  # type: ignore[arg-type]


def actions(card: list[blocks.Block]) -> list[str]:
    return [e["action_id"] for b in card if b["type"] == "actions" for e in b["elements"]]


SILENCE = OpenSilence("08a79263-e40e", "main", T0 + timedelta(hours=1), False, "U0BOB", ())


def test_the_card_offers_silence_and_shows_a_silence_with_its_unsilence_button() -> None:
    assert blocks.SILENCE in actions(blocks.card_blocks(view()))
    assert blocks.UNSILENCE not in actions(blocks.card_blocks(view()))
    assert blocks.SILENCE not in actions(blocks.card_blocks(view(silenceable=False)))
    card = blocks.card_blocks(view(silences=(SILENCE,)))
    text = json.dumps(card, ensure_ascii=False)
    assert "🔕 *Silenced* until <!date^" in text
    assert "`08a79263-e40e` on `main` by <@U0BOB>" in text
    assert blocks.UNSILENCE in actions(card)
    # A resolved incident's card still lets its silences be expired.
    resolved = blocks.card_blocks(view(status="resolved", resolved_at=T0, silences=(SILENCE,)))
    assert actions(resolved) == [blocks.REOPEN, blocks.UNSILENCE]


def test_the_preview_shows_what_will_be_created_and_a_button_per_duration() -> None:
    plan = SilencePlan(
        "INC-0007",
        "main",
        "1h",
        (Matcher("alertname", "Pool"), Matcher("instance", "db-<1>", "=~")),
        "warroom INC-0007: Pool exhausted",
        "ab12cd34ef56",
    )
    shown = blocks.silence_preview_blocks(plan, ("1h", "4h", "until-resolved"))
    text = json.dumps(shown, ensure_ascii=False)
    assert '`alertname=\\"Pool\\"`' in text
    assert "db-&lt;1&gt;" in text
    buttons = [e for b in shown if b["type"] == "actions" for e in b["elements"]]
    assert [b["action_id"] for b in buttons] == [
        "silence.confirm.1h",
        "silence.confirm.4h",
        "silence.confirm.until-resolved",
    ]
    assert SilencePlan.from_token(buttons[2]["value"]).until_resolved
    assert all("confirm" in b for b in buttons)
    many = SilencePlan(
        "INC-1",
        "main",
        "1h",
        tuple(Matcher(f"l{n}", "v" * 90) for n in range(25)),
        "c",
        "ab12cd34ef56",
    )
    with pytest.raises(UserError, match="Too many matchers"):
        blocks.silence_preview_blocks(many)
