"""``/incident silence`` and ``unsilence`` as typed, and the matchers they become."""

from __future__ import annotations

import pytest

from bot.commands.parse import SilenceCmd, UnsilenceCmd, UsageError, help_text, parse
from bot.errors import InvalidInput
from bot.incidents.silences import Matcher, SilencePlan, common_labels, merge_matchers
from bot.store.models import Alert


def test_silence_takes_a_duration_then_matchers_with_quoted_values() -> None:
    assert parse("silence 1h") == SilenceCmd(None, "1h")
    assert parse("silence INC-7 until_resolved") == SilenceCmd("INC-7", "until-resolved")
    assert parse('silence 4h instance="db 1" job=~"api.*" env!=dev host!~“tmp-.*”') == SilenceCmd(
        None,
        "4h",
        (
            ("instance", "=", "db 1"),
            ("job", "=~", "api.*"),
            ("env", "!=", "dev"),
            ("host", "!~", "tmp-.*"),
        ),
    )


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("silence", "needs a duration"),
        ("silence 2h", "`2h` is not a silence duration"),
        ("silence 1h db1", "`db1` is not a matcher"),
        ("silence 1h a=1 a=2", "`a` is matched twice"),
        ('silence 1h a="open', "double quote is not closed"),
        ("unsilence a b", "at most a silence id"),
        ("unsilence <@U1>", "at most a silence id"),
    ],
)
def test_mistakes_say_how_to_write_it(text: str, says: str) -> None:
    with pytest.raises(UsageError, match=says) as caught:
        parse(text)
    assert caught.value.usage.startswith("/incident " + text.split()[0])


def test_unsilence_takes_an_optional_silence_id() -> None:
    assert parse("unsilence") == UnsilenceCmd(None)
    assert parse("unsilence INC-3 08A79263-e40e") == UnsilenceCmd("INC-3", "08A79263-e40e")
    assert "silence" in help_text()
    assert "until-resolved" in help_text("silence")


def _alert(labels: dict[str, str], raw_labels: dict[str, str] | None = None) -> Alert:
    raw = {"labels": raw_labels} if raw_labels is not None else {}
    return Alert(source="alertmanager", fingerprint="f", status="firing", labels=labels, raw=raw)


def test_the_group_s_common_labels_are_alertmanager_s_own() -> None:
    alerts = [
        _alert(
            {"alertname": "Pool", "instance": "a", "env": "prod"},
            {"alertname": "Pool", "instance": "a"},
        ),
        _alert(
            {"alertname": "Pool", "instance": "b", "env": "prod"},
            {"alertname": "Pool", "instance": "b"},
        ),
    ]
    # `env` was merged in by the endpoint's labels: Alertmanager never saw it, so it is left out.
    assert common_labels(alerts) == {"alertname": "Pool"}


def test_matchers_refuse_what_would_silence_everything_or_is_malformed() -> None:
    with pytest.raises(InvalidInput, match="share no label"):
        merge_matchers({}, [])
    with pytest.raises(InvalidInput, match="match every alert"):
        merge_matchers({}, [Matcher("env", "dev", "!=")])
    with pytest.raises(InvalidInput, match="not a valid regex"):
        Matcher("job", "api(", "=~")
    with pytest.raises(InvalidInput, match="not a label name"):
        Matcher("bad-name", "x")
    assert [
        str(m) for m in merge_matchers({"alertname": "Pool"}, [Matcher("env", "dev", "!=")])
    ] == [
        'alertname="Pool"',
        'env!="dev"',
    ]


def test_a_tampered_or_stale_preview_token_is_refused() -> None:
    plan = SilencePlan("INC-1", "main", "1h", (Matcher("alertname", "Pool"),), "c", "ab12cd34ef56")
    assert SilencePlan.from_token(plan.with_duration("until-resolved").token()).until_resolved
    with pytest.raises(InvalidInput):
        SilencePlan.from_token(plan.token().replace('"1h"', '"9d"'))
    with pytest.raises(InvalidInput):
        SilencePlan.from_token("not json")
