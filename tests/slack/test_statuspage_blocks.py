"""The card's status page buttons and a status page preview, as Slack will show them."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from bot.incidents.statuspage import StatusPageLink, StatusPlan
from handlers.slack import blocks
from handlers.slack.blocks.statuspage import (
    STATUSPAGE,
    STATUSPAGE_CONFIRM,
    STATUSPAGE_RESOLVE,
    statuspage_preview_blocks,
)
from tests.slack.test_silence_blocks import T0, actions, view

LINK = StatusPageLink("public", "https://stspg.io/abc", "identified", resolved=False)


def test_the_card_offers_the_status_page_only_where_it_is_configured() -> None:
    assert STATUSPAGE not in actions(blocks.card_blocks(view()))
    assert STATUSPAGE in actions(blocks.card_blocks(view(status_page_ready=True)))
    card = blocks.card_blocks(view(status_page_ready=True, status_pages=(LINK,)))
    assert "<https://stspg.io/abc|Status page public (identified)>" in json.dumps(card)
    resolved = {"status": "resolved", "resolved_at": T0, "status_page_ready": True}
    assert STATUSPAGE_RESOLVE not in actions(blocks.card_blocks(view(**resolved)))
    offered = blocks.card_blocks(view(**resolved, status_pages=(LINK,)))
    assert STATUSPAGE_RESOLVE in actions(offered)
    done = StatusPageLink("public", "https://stspg.io/abc", "resolved", resolved=True)
    assert STATUSPAGE_RESOLVE not in actions(
        blocks.card_blocks(view(**resolved, status_pages=(done,)))
    )


def test_the_preview_shows_the_public_text_escaped_with_one_publish_button() -> None:
    plan = StatusPlan(
        key="INC-0007",
        target="public",
        action="update",
        at=datetime(2026, 11, 26, 9, 0, tzinfo=UTC),
        nonce="abc123",
        name="<!here> Pool <b>exhausted</b>",
        body="INCIDENT UPDATE: <!here> Pool\nProgress: ```rm -rf``` & <@U0EVIL>",
        phase="identified",
        impact="critical",
        components={"ftgks51sfs2d": "major_outage"},
        became_update=True,
    )
    shown = statuspage_preview_blocks(plan)
    text = json.dumps(shown, ensure_ascii=False)
    assert "<!here>" not in text
    assert "<@U0EVIL>" not in text
    assert "&lt;!here&gt; Pool &lt;b&gt;exhausted&lt;/b&gt;" in text
    assert "posts an update" in text
    body = shown[1]["text"]["text"]
    assert body.startswith("```INCIDENT UPDATE: &lt;!here&gt; Pool\nProgress: ")
    assert body.count("```") == 2  # the body's own fence cannot close the code block
    assert "major outage" in text
    assert [b["action_id"] for b in shown[-1]["elements"]] == [STATUSPAGE_CONFIRM]
    assert shown[-1]["elements"][0]["value"] == plan.token()
