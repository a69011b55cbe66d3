"""The card's next steps and Resolve now, and the prefilled resolve form, within Slack's limits."""

from __future__ import annotations

from bot.incidents.card import NextStep
from handlers.slack import blocks
from tests.fakes.slack_blocks import control_sequences, message_block_errors, view_errors

from .test_blocks import buttons, everything, open_view, resolved_view

HOSTILE = "<!channel> <@U0BOSS0001> " + "x" * 400


def _steps(n: int, because: str = "idle_connections red: idle connections = 63 (red: > 50)"):
    return tuple(
        NextStep(runbook="db", step=f"fix_{i}", title=f"Fix {i} " + "y" * 90, because=because)
        for i in range(n)
    )


def test_suggested_mitigations_are_buttons_with_their_reason() -> None:
    rendered = blocks.card_blocks(open_view(next_steps=_steps(1)))
    assert message_block_errors(rendered) == []
    shown = everything(rendered)
    assert "*Next step*" in shown
    assert "idle connections = 63 (red: &gt; 50)" in shown
    (row,) = [b for b in rendered if b.get("block_id") == blocks.NEXT_STEPS]
    (button,) = row["elements"]
    assert button["action_id"] == f"{blocks.NEXT_STEP}.0"
    assert button["value"] == f"{open_view().key}|db|fix_0"
    assert len(button["text"]["text"]) <= blocks.BUTTON_TEXT_MAX


def test_many_hostile_suggestions_stay_within_limits_and_notify_nobody() -> None:
    rendered = blocks.card_blocks(open_view(next_steps=_steps(9, because=HOSTILE)))
    assert message_block_errors(rendered) == []
    plain = blocks.card_blocks(open_view())
    # Only the card's own mentions and dates: nothing the suggestion's text carried.
    assert control_sequences(blocks=rendered) == control_sequences(blocks=plain)
    assert "&lt;!channel&gt; &lt;@U0BOSS0001&gt;" in everything(rendered)
    (row,) = [b for b in rendered if b.get("block_id") == blocks.NEXT_STEPS]
    assert len(row["elements"]) == 5


def test_a_resolved_card_suggests_nothing() -> None:
    rendered = blocks.card_blocks(resolved_view(next_steps=_steps(1), resolve_ready=True))
    assert not [b for b in rendered if b.get("block_id") == blocks.NEXT_STEPS]
    assert blocks.RESOLVE_NOW not in buttons(rendered)


def test_resolve_now_is_offered_when_quiet() -> None:
    assert blocks.RESOLVE_NOW not in buttons(blocks.card_blocks(open_view()))
    rendered = blocks.card_blocks(open_view(resolve_ready=True))
    assert message_block_errors(rendered) == []
    offered = buttons(rendered)[blocks.RESOLVE_NOW]
    assert offered["text"]["text"] == "Resolve now"
    assert "confirm" not in offered  # the prefilled form is the confirmation


def test_the_resolve_form_is_prefilled_unescaped_and_cut() -> None:
    modal = blocks.resolve_modal(
        open_view(),
        summary="Checkout failing. Last update: pool &gt; 90%",
        root_cause="idle connections 63 > 50 on main",
        resolution="Ran db/terminate_idle on main: 6 rows\n" + "z" * 5000,
    )
    assert view_errors(modal) == []
    values = {
        b["block_id"]: b["element"].get("initial_value")
        for b in modal["blocks"]
        if b["type"] == "input"
    }
    assert values["summary"] == "Checkout failing. Last update: pool > 90%"
    assert values["root_cause"] == "idle connections 63 > 50 on main"
    assert len(values["resolution"]) <= blocks.INITIAL_VALUE_MAX
