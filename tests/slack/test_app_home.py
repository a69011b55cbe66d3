"""The App Home tab, driven the way Slack does: signed events and clicks through the real Bolt
app, the Home tab published at the fake Slack (strict about ``home`` views, 100 blocks and
views.publish's Tier 4).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from starlette.testclient import TestClient

from bot.config.settings import load_settings
from bot.incidents.home import HomeIncident, HomeView, pages
from handlers.app import create_app
from handlers.slack import blocks
from tests.fakes.slack_api import running_fake_slack_in_thread
from tests.fakes.slack_blocks import control_sequences, view_errors
from tests.fakes.slack_state import ALICE, BOB, BOT_TOKEN, CAROL, DAVE, View

from .test_e2e import SECRET, Harness, incident_channel

PUBLIC = "https://warroom.example.com"
EVERY_S = 2
HOSTILE = "<!channel> <@U0ALICE001> pool at 97% <https://evil.example|click here> & rising"


@pytest.fixture
def harness(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    with running_fake_slack_in_thread(rate_limit_scale=60.0) as fake:
        for var in list(os.environ):
            if var.startswith(("WARROOM_", "SLACK_")):
                monkeypatch.delenv(var)
        monkeypatch.setenv("DATABASE_URL", database_url)
        monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
        monkeypatch.setenv("SLACK_SIGNING_SECRET", SECRET)
        monkeypatch.setenv("WARROOM_SLACK__API_URL", fake.base_url)
        monkeypatch.setenv("WARROOM_SLACK__BROADCAST_CHANNEL", fake.channel_by_name("incidents").id)
        monkeypatch.setenv(
            "WARROOM_SLACK__ROUTING", json.dumps([{"severities": ["P1"], "users": [BOB.id]}])
        )
        monkeypatch.setenv("WARROOM_SLACK__HOME_REFRESH", f"{EVERY_S}s")
        monkeypatch.setenv("WARROOM_SERVER__PUBLIC_URL", PUBLIC)
        with TestClient(create_app(load_settings())) as client:
            yield Harness(client, fake)
        fake.assert_clean()


def open_home(harness: Harness, user: str) -> Any:
    event = {"type": "app_home_opened", "user": user, "channel": "D0HOME0001", "tab": "home"}
    return harness.event(event, f"Ev{user}{time.monotonic_ns()}")


def published(harness: Harness, user: str, count: int = 1) -> View:
    home = harness.wait(
        f"{user}'s home published {count}×",
        lambda: (h := harness.fake.home(user)) is not None and h.publishes >= count and h,
    )
    assert isinstance(home, View)
    return home


def text_of(home: View) -> str:
    return json.dumps(home.body["blocks"], ensure_ascii=False)


def sections(home: View) -> list[str]:
    return [b["text"]["text"] for b in home.body["blocks"] if b["type"] == "section"]


def declare(harness: Harness, text: str, user: str) -> None:
    general = harness.fake.channel_by_name("general").id
    assert harness.command(f"declare {text}", channel=general, user=user).status_code == 200


def test_opening_the_home_publishes_ones_incidents_and_all_open_by_severity(
    harness: Harness,
) -> None:
    fake = harness.fake
    declare(harness, "Search is slow sev:P3", CAROL.id)  # INC-0001, Carol commands
    declare(harness, "Checkout is down sev:P1", ALICE.id)  # INC-0002, routing invites Bob
    channel = harness.wait(
        "the P1 channel", lambda: incident_channel(fake, "-0002-checkout-is-down")
    )
    harness.wait("Bob invited", lambda: BOB.id in fake.members(channel.id))

    assert open_home(harness, BOB.id).status_code == 200
    home = published(harness, BOB.id)

    mine, every = sections(home)[0], sections(home)[2]
    assert mine == "*Your open incidents* (1)"
    own = sections(home)[1]  # Bob holds no role: he is in the P1's channel
    for part in ("INC-0002", "Checkout is down", f"<#{channel.id}>"):
        assert part in own
    assert every == "*All open incidents* (2)"
    listed = "\n".join(sections(home)[3:])
    assert listed.index("P1") < listed.index("INC-0002") < listed.index("P3")
    assert listed.index("P3") < listed.index("INC-0001")
    assert f"<{PUBLIC}/incidents/INC-0002|INC-0002>" in listed
    assert f"<{PUBLIC}/incidents|Open incidents>" in text_of(home)
    assert f"<{PUBLIC}/report|Report>" in text_of(home)
    (actions,) = [b for b in home.body["blocks"] if b["type"] == "actions"]
    assert actions["elements"][0]["text"]["text"] == "Declare incident"


def test_someone_in_no_incident_sees_the_empty_state(harness: Harness) -> None:
    declare(harness, "Search is slow sev:P3", CAROL.id)

    open_home(harness, DAVE.id)
    home = published(harness, DAVE.id)

    assert sections(home)[1] == blocks.home.EMPTY_MINE
    assert "INC-0001" in "\n".join(sections(home)[2:])  # all open ones are still listed


def test_a_hostile_title_reaches_the_home_only_escaped(harness: Harness) -> None:
    declare(harness, f"{HOSTILE} sev:P2", ALICE.id)  # the commander's home follows by itself

    home = published(harness, ALICE.id)

    shown = text_of(home)
    assert "&lt;!channel&gt; &lt;@U0ALICE001&gt;" in shown
    assert "click here (https://evil.example)" in shown
    assert "&amp; rising" in shown
    for pointer, sequence in control_sequences(None, home.body["blocks"]):
        assert sequence.startswith(("<!date^", f"<{PUBLIC}/", "<#C", "<@")), (pointer, sequence)
    # The one mention is the commander's, made from the role, not from the title.
    assert shown.count(f"<@{ALICE.id}>") == shown.count(f"commander <@{ALICE.id}>") == 1


def test_role_changes_republish_the_holders_home_once(harness: Harness) -> None:
    fake = harness.fake
    declare(harness, "Checkout is down sev:P2", ALICE.id)
    declare(harness, "Search is slow sev:P3", ALICE.id)
    harness.wait("both channels", lambda: incident_channel(fake, "-0002-search-is-slow"))
    open_home(harness, CAROL.id)
    first = published(harness, CAROL.id)
    assert sections(first)[1] == blocks.home.EMPTY_MINE

    # Two role changes at once (within the interval): one more publish, showing both.
    general = fake.channel_by_name("general").id
    harness.command(f"scribe INC-0001 <@{CAROL.id}|carol>", channel=general)
    harness.command(f"comms INC-0002 <@{CAROL.id}|carol>", channel=general)
    again = published(harness, CAROL.id, count=2)
    mine = "\n".join(sections(again)[1:3])
    for part in ("INC-0001", "you: scribe", "INC-0002", "you: communications"):
        assert part in mine

    time.sleep(EVERY_S + 1)
    assert again.publishes == 2


def test_the_declare_button_opens_the_form_and_submitting_declares(harness: Harness) -> None:
    fake = harness.fake
    open_home(harness, ALICE.id)
    home = published(harness, ALICE.id)
    (actions,) = [b for b in home.body["blocks"] if b["type"] == "actions"]
    button = actions["elements"][0]

    clicked = harness.interaction(
        {
            "type": "block_actions",
            "user": {"id": ALICE.id},
            "team": {"id": "T0FAKE0001"},
            "trigger_id": fake.issue_trigger_id(ALICE.id),
            "container": {"type": "view", "view_id": home.id},
            "view": {**home.body, "id": home.id},
            "actions": [
                {
                    "action_id": button["action_id"],
                    "block_id": actions["block_id"],
                    "value": button["value"],
                    "type": "button",
                    "action_ts": "1700000000.000100",
                }
            ],
        }
    )
    assert clicked.status_code == 200
    modal = harness.wait("the declare form", lambda: fake.views)[-1]
    assert modal.body["callback_id"] == blocks.DECLARE_MODAL
    assert modal.body["title"]["text"] == "Declare incident"

    values = {
        "title": {"title": {"type": "plain_text_input", "value": "Payments fail"}},
        "severity": {
            "severity": {
                "type": "static_select",
                "selected_option": {"text": {"type": "plain_text", "text": "P1"}, "value": "P1"},
            }
        },
        "service": {"service": {"type": "plain_text_input", "value": "payments"}},
        "impact": {"impact": {"type": "plain_text_input", "value": "card payments fail"}},
        "commander": {"commander": {"type": "users_select", "selected_user": ALICE.id}},
    }
    submitted = harness.interaction(
        {
            "type": "view_submission",
            "team": {"id": "T0FAKE0001"},
            "user": {"id": ALICE.id},
            "view": {**modal.body, "id": modal.id, "state": {"values": values}},
        }
    )
    assert submitted.status_code == 200
    channel = harness.wait("the channel", lambda: incident_channel(fake, "-0001-payments-fail"))
    harness.wait("the commander invited", lambda: ALICE.id in fake.members(channel.id))
    shown = harness.incident("INC-0001")
    assert (shown["title"], shown["severity"], shown["service"]) == (
        "Payments fail",
        "P1",
        "payments",
    )
    assert shown["roles"] == {"commander": ALICE.id}
    again = published(harness, ALICE.id, count=2)  # she commands it now
    assert "Payments fail" in sections(again)[1]


def test_declare_without_a_title_opens_the_same_form(harness: Harness) -> None:
    general = harness.fake.channel_by_name("general").id
    harness.command("declare", channel=general)

    modal = harness.wait("the declare form", lambda: harness.fake.views)[-1]

    assert modal.body["callback_id"] == blocks.DECLARE_MODAL
    (lead,) = [b for b in modal.body["blocks"] if b["block_id"] == "commander"]
    assert lead["element"]["initial_user"] == ALICE.id


# -- the builder, without Slack -------------------------------------------------------------

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def item(n: int, severity: str = "P2", rank: int = 1, **extra: Any) -> HomeIncident:
    fields: dict[str, Any] = {
        "key": f"INC-{n:04d}",
        "title": f"Incident number {n} " + "x" * 80,
        "severity": severity,
        "severity_label": "High",
        "rank": rank,
        "status": "investigating",
        "declared_at": T0 - timedelta(minutes=n),
        "channel_id": f"C{n:08d}",
        "commander": ALICE.id,
        "page_url": f"{PUBLIC}/incidents/INC-{n:04d}",
    }
    return HomeIncident(**(fields | extra))


def test_more_incidents_than_fit_show_the_most_severe_and_a_count() -> None:
    crowd = tuple(item(n, "P1", 0) for n in range(1, 51))  # the core's 50 most severe
    mine = tuple(item(n, "P1", 0, roles=("commander",)) for n in range(1, 31))
    view = blocks.home_view(
        HomeView(ALICE.id, mine, crowd, open_total=400, pages=pages(PUBLIC), levels=("P1", "P2"))
    )

    assert view_errors(view, surfaces=("home",)) == []
    assert len(view["blocks"]) <= blocks.HOME_MAX_BLOCKS
    every = json.dumps(view["blocks"])
    assert "10 more of yours on" in every
    assert f"350 more on <{PUBLIC}/incidents|the incidents page>" in every
    assert "INC-0001" in every
    assert "INC-0050" in every


def test_hostile_text_anywhere_on_the_home_is_escaped() -> None:
    hostile = item(
        7, title=HOSTILE, severity_label="<!here>", status="<@U0EVIL>", roles=("<!everyone>",)
    )
    view = blocks.home_view(HomeView(ALICE.id, (hostile,), (hostile,), 1, levels=("P2",)))

    for pointer, sequence in control_sequences(None, view["blocks"]):
        assert sequence.startswith(("<!date^", "<@U0ALICE001>", "<#C", f"<{PUBLIC}/")), (
            pointer,
            sequence,
        )
    assert "&lt;!here&gt;" in json.dumps(view["blocks"])
