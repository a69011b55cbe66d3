"""The card's Follow-ups section, as Slack will show it: counts, the first few lines, tickets as
links, hostile text shown as text, and within Slack's limits however many there are."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from bot.incidents.followups import FollowUpLine, FollowUpTally
from handlers.slack import blocks
from handlers.slack.blocks.limits import MAX_BLOCKS, SECTION_MAX
from tests.fakes.slack_blocks import control_sequences, message_block_errors

from .test_blocks import open_view
from .test_escaping import EVIL, PROPERTY, assert_nothing_from_input
from .test_silence_blocks import SILENCE

JIRA = "https://acme.atlassian.net/browse/OPS-12"
HOSTILE = "<!channel> see <http://x|y> and *bold* _now_ ~gone~ `rm -rf` & more"


def line(n: int, **changes: Any) -> FollowUpLine:
    base = FollowUpLine(id=n, text=f"add a queue depth alert {n}", owner="U0ALICE", done=False)
    return dataclasses.replace(base, **changes)


def follow_ups(card: list[blocks.Block]) -> list[str]:
    """The texts of the card's Follow-ups section(s)."""
    texts = [b["text"]["text"] for b in card if b["type"] == "section" and "text" in b]
    return [t for t in texts if t.startswith("*Follow-ups:*")]


def test_a_card_without_follow_ups_has_no_such_section() -> None:
    assert follow_ups(blocks.card_blocks(open_view())) == []


def test_the_section_counts_them_and_lists_each_on_one_line() -> None:
    tally = FollowUpTally(
        open=2,
        done=1,
        shown=(
            line(3),
            line(2, owner="carol"),
            line(1, done=True, owner=None, ticket="OPS-12", url=JIRA),
        ),
    )
    card = blocks.card_blocks(open_view(follow_ups=tally))
    assert message_block_errors(card) == []
    (text,) = follow_ups(card)
    assert text.split("\n") == [
        "*Follow-ups:* 2 open · 1 done",
        "⬜ #3 add a queue depth alert 3 · <@U0ALICE>",
        "⬜ #2 add a queue depth alert 2 · carol",
        f"✅ #1 add a queue depth alert 1 · 🎫 <{JIRA}|OPS-12>",
    ]
    # After the alerts, before the links and the buttons.
    at = next(i for i, b in enumerate(card) if b.get("text", {}).get("text") == text)
    assert card[at - 1]["text"]["text"].startswith("*Alerts:*")
    assert card[at + 1]["type"] == "context"  # the links


def test_beyond_the_first_few_the_rest_are_counted() -> None:
    tally = FollowUpTally(open=40, done=10, shown=tuple(line(n) for n in range(50, 45, -1)))
    (text,) = follow_ups(blocks.card_blocks(open_view(follow_ups=tally)))
    assert text.endswith("\n_…and 45 more_")
    assert text.count("\n") == 6


def test_a_filed_follow_up_links_its_ticket_and_a_bad_link_shows_only_the_key() -> None:
    tally = FollowUpTally(
        open=4,
        shown=(
            line(1, ticket="OPS-12", url=JIRA),
            line(2, ticket="#7", url="https://github.com/acme/platform/issues/7"),
            line(3, ticket="OPS-13", url="javascript:alert(1)"),
            line(4, ticket="OPS-14", url="https://x.example/" + "a" * 400),
        ),
    )
    (text,) = follow_ups(blocks.card_blocks(open_view(follow_ups=tally)))
    lines = text.split("\n")
    assert lines[1].endswith(f"🎫 <{JIRA}|OPS-12>")
    assert lines[2].endswith("🎫 <https://github.com/acme/platform/issues/7|#7>")
    assert lines[3].endswith("🎫 OPS-13")  # not a link Slack should follow: the key alone
    assert lines[4].endswith("🎫 OPS-14")  # too long for five lines to fit: the key alone


def test_hostile_follow_up_text_and_owner_are_shown_as_text() -> None:
    hostile = line(1, text=HOSTILE, owner="<!here> *boss*", ticket="<!everyone>|x", url=JIRA)
    card = blocks.card_blocks(open_view(follow_ups=FollowUpTally(open=1, shown=(hostile,))))
    assert message_block_errors(card) == []
    (text,) = follow_ups(card)
    shown = text.split("\n")[1]
    assert shown == (
        "⬜ #1 &lt;!channel&gt; see y (http://x) and ∗bold∗ ˍnowˍ ∼gone∼ ˋrm -rfˋ &amp; more"
        f" · &lt;!here&gt; ∗boss∗ · 🎫 <{JIRA}|&lt;!everyone&gt;∣x>"
    )
    sequences = [s for _, s in control_sequences(None, [b for b in card if "text" in b])]
    assert not [s for s in sequences if s.startswith(("<!channel", "<!here", "<!everyone"))]
    assert "<http://x|y>" not in json.dumps(card)
    # snake_case stays as written: an underscore inside a word formats nothing.
    snake = line(2, text="raise pool_size")
    (text,) = follow_ups(blocks.card_blocks(open_view(follow_ups=FollowUpTally(1, 0, (snake,)))))
    assert "raise pool_size" in text


def test_fifty_follow_ups_at_their_longest_still_fit_slacks_limits() -> None:
    longest = line(
        10**9,
        text="&<>" * 3000,
        owner="<" * 100,
        ticket="&" * 200,
        url="https://jira.example/" + "&" * 55,  # 295 characters once escaped
    )
    tally = FollowUpTally(open=25, done=25, shown=(longest,) * 5)
    # The busiest card otherwise: every role, eight alerts, silences, next steps, status pages.
    busy = open_view(
        follow_ups=tally,
        silences=(SILENCE,) * 3,
        roles={f"role{n}": f"U0R{n}" for n in range(15)},
        resolve_ready=True,
    )
    card = blocks.card_blocks(busy)
    assert message_block_errors(card) == []
    assert len(card) <= MAX_BLOCKS
    (text,) = follow_ups(card)  # one section
    assert len(text) <= SECTION_MAX
    assert text.count("🎫 <https://jira.example/") == 5  # every link kept whole
    assert text.endswith("_…and 45 more_")


@PROPERTY
@given(text=EVIL, owner=EVIL, key=EVIL, done=st.booleans())
def test_no_follow_up_turns_its_text_owner_or_key_into_a_mention(
    text: str, owner: str, key: str, done: bool
) -> None:
    item = line(7, text=text, owner=owner, ticket=key, url=JIRA, done=done)
    view = open_view(follow_ups=FollowUpTally(open=3, done=3, shown=(item,) * 5))
    card = blocks.card_blocks(view)
    assert message_block_errors(card) == []
    people = {"U012ABC", "W0SCRIBE", owner.strip()}  # the roles; an owner given as a user id
    assert_nothing_from_input(card, people=people)
