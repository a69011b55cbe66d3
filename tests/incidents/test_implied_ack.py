"""A person's first act on an incident acknowledges it: once, on the timeline as such."""

from __future__ import annotations

import pytest

from bot.errors import IllegalTransition
from bot.incidents.lifecycle import Incidents


async def test_taking_a_role_acknowledges_once(incidents: Incidents) -> None:
    await incidents.declare(title="Disk full", actor="alertmanager", acknowledge=False)
    made = await incidents.assign("INC-1", "commander", "U1", actor="U1")
    assert made.acknowledged_by == "U1"
    await incidents.assign("INC-1", "scribe", "U2", actor="U2")
    events = await incidents.timeline("INC-1")
    acks = [e for e in events if e.kind == "acknowledged"]
    assert [(e.actor, e.text) for e in acks] == [
        ("U1", "acknowledged by U1 (assigned the commander role)")
    ]
    assert acks[0].data == {"implied_by": "assigned the commander role"}
    with pytest.raises(IllegalTransition):
        await incidents.acknowledge("INC-1", actor="U2")  # already, by U1's act


async def test_warroom_itself_acknowledges_nothing(incidents: Incidents) -> None:
    await incidents.declare(title="Disk full", actor="alertmanager", acknowledge=False)
    await incidents.assign("INC-1", "commander", "U1", actor="warroom")
    assert (await incidents.get("INC-1")).acknowledged_at is None
