"""Markdown output: what came from alerts and people cannot change the document's shape."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from bot.clock import FixedClock
from bot.core import Core
from bot.incidents.lifecycle import Change
from bot.intake.alerts.model import AlertStatus, Delivery, NormalizedAlert
from bot.intake.fold import Endpoint
from bot.postmortem import (
    build_postmortem,
    md_escape,
    md_fence,
    md_inline,
    md_link,
    register_filters,
    render_markdown,
)
from bot.templating import Templates

from .checks import assert_tables_keep_their_shape

HOSTILE = "<script>alert('x')</script> *bold* _it_ [link](http://evil) #tag | pipe"


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("<script>alert(1)</script>", "&lt;script&gt;alert\\(1\\)&lt;/script&gt;"),
        ("*_[]()#|", "\\*\\_\\[\\]\\(\\)\\#\\|"),
        ("a & b > c", "a &amp; b &gt; c"),
        ("`code` ~strike~ {x}", "\\`code\\` \\~strike\\~ \\{x\\}"),
        ("back\\slash", "back\\\\slash"),
        ("- item\n+ item\n1. first\n2) second", "\\- item\n\\+ item\n1\\. first\n2\\) second"),
        ("title\n===", "title\n\\==="),
        ("    indented code", "indented code"),
        ("10.0.0.12 and 3.5", "10.0.0.12 and 3.5"),
        ("connections at 98% of max_connections", "connections at 98% of max\\_connections"),
        (None, ""),
    ],
)
def test_md_escape(text: str | None, escaped: str) -> None:
    assert md_escape(text) == escaped


def test_md_inline_keeps_one_line() -> None:
    assert md_inline("first\n\n# second\n- third") == "first \\# second \\- third"


def test_md_fence_is_longer_than_any_fence_inside() -> None:
    assert md_fence("plain") == "```text\nplain\n```"
    inside = "before\n```\nescaped?\n````\nafter"
    fenced = md_fence(inside)
    assert fenced.startswith("`````text\n")
    assert fenced.endswith("\n`````")


@pytest.mark.parametrize(
    ("url", "label", "shown"),
    [
        ("https://grafana/d/x?a=1&b=2", "graph", "[graph](<https://grafana/d/x?a=1&b=2>)"),
        ("http://h/a b|c<d>", "x", "[x](<http://h/a%20b%7Cc%3Cd%3E>)"),
        ("javascript:alert(1)", "runbook", "runbook (javascript:alert\\(1\\))"),
        ("data:text/html,<b>", None, "data:text/html,&lt;b&gt;"),
    ],
)
def test_md_link_links_only_the_web(url: str, label: str | None, shown: str) -> None:
    assert md_link(url, label) == shown


def test_register_filters_adds_them_to_any_environment() -> None:
    templates = Templates()
    register_filters(templates.env)
    out = templates.env.from_string("{{ x | md_escape }} {{ d | duration }}").render(
        x="*", d=timedelta(minutes=65)
    )
    assert out == "\\* 1 h 5 min"


async def test_hostile_text_from_people_and_alerts_is_escaped(
    core: Core, clock: FixedClock, templates: Templates
) -> None:
    bad_alert = NormalizedAlert(
        source="alertmanager",
        fingerprint="x",
        status=AlertStatus.FIRING,
        labels={"alertname": "<img src=x onerror=alert(1)>|x"},
        annotations={},
        summary=HOSTILE,
        group_key="g",
        links={"runbook": "javascript:alert(1)", "graph](x": "https://ok.example/a b"},
    )
    await core.intake.receive(
        Endpoint(name="am", source="alertmanager"),
        Delivery(source="alertmanager", alerts=(bad_alert,)),
        delivery_key="d1",
    )  # opens INC-0001
    await core.incidents.edit("INC-1", actor="U1", summary=f"Summary: {HOSTILE}")
    await core.incidents.add_follow_up("INC-1", f"Fix {HOSTILE}", actor="U1", owner="U|2")
    clock.advance(timedelta(minutes=3))
    await core.incidents.note("INC-1", f"# not a heading\n{HOSTILE}", actor="U1")
    async with core.db.transaction() as session:
        incident = await core.incidents.lock_key(session, "INC-1")
        step = {
            "run_id": "r1",
            "runbook": "db|x",
            "step": "<b>",
            "grade": "red",
            "summary": HOSTILE,
            "rows": [{"a|b": "<i>", "c": "x|y\nz"}],
        }
        await core.incidents.record(session, incident, "U1", [Change("step_run", HOSTILE, step)])
    await core.incidents.resolve("INC-1", actor="U1", root_cause=f"\n- {HOSTILE}")
    pm = await build_postmortem(
        core.db, "INC-1", scheme=core.incidents.scheme, incidents=core.incidents, now=clock.now()
    )
    text = render_markdown(templates, pm)
    outside_links = re.sub(r"\]\(<https?://[^<>\s]*>\)", "](…)", text)
    assert "<" not in outside_links  # no raw HTML anywhere
    assert "Summary: &lt;script&gt;alert\\('x'\\)&lt;/script&gt; \\*bold\\* \\_it\\_" in text
    assert "\\[link\\]\\(http://evil\\) \\#tag \\| pipe" in text
    assert "[link](" not in text
    assert "](javascript" not in text
    assert "runbook (javascript:alert\\(1\\))" in text
    assert "[graph\\]\\(x](<https://ok.example/a%20b>)" in text
    assert "&lt;img src=x onerror=alert\\(1\\)&gt;\\|x" in text
    headings = [line for line in text.splitlines() if line.startswith("#")]
    assert all(not h.startswith("# not") for h in headings)
    assert_tables_keep_their_shape(text)
    assert "\\- &lt;script&gt;" in text  # the root cause's list marker, escaped


async def test_a_user_template_overrides_the_shipped_one(
    core: Core, clock: FixedClock, tmp_path: Path
) -> None:
    (tmp_path / "postmortem.md.j2").write_text(
        "# {{ pm.key }}: {{ pm.title | md_inline }} ({{ pm.times.duration | duration }})"
    )
    await core.incidents.declare(title="Disk *full*", actor="U1", severity="P3")
    pm = await build_postmortem(
        core.db,
        "INC-0001",
        scheme=core.incidents.scheme,
        incidents=core.incidents,
        now=clock.advance(timedelta(minutes=90)),
    )
    assert render_markdown(Templates(tmp_path), pm) == "# INC-0001: Disk \\*full\\* (1 h 30 min)\n"
