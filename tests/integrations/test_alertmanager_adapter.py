"""The Alertmanager adapter's answers mapped onto the silencing port's errors.

What Alertmanager really answers is exercised in ``test_alertmanager_silences.py``; here
the failures a real one rarely gives on demand (a 503, a lost answer) are scripted.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from bot.config.sections import AlertmanagerSettings
from bot.incidents.silences import Matcher
from bot.ports.silencing import Refused, Unavailable
from integrations.alertmanager import AlertmanagerSilencer

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def silencer(handler: httpx.MockTransport, monkeypatch: pytest.MonkeyPatch) -> AlertmanagerSilencer:
    monkeypatch.setenv("T_AM", "s3cret")
    targets = {"main": AlertmanagerSettings(url="http://am.test:9093/", token_env="T_AM")}
    return AlertmanagerSilencer(targets, transport=handler)


async def create(am: AlertmanagerSilencer, target: str = "main") -> str:
    ref = await am.create(
        target,
        [Matcher("alertname", "Pool"), Matcher("job", "api.*", "=~")],
        starts=NOW,
        ends=NOW + timedelta(hours=1),
        created_by="U0ALICE",
        comment="warroom INC-0001 [warroom:ab12]",
    )
    return ref.id


async def test_create_sends_the_v2_body_with_the_token(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"silenceID": "abc-1"})

    am = silencer(httpx.MockTransport(answer), monkeypatch)
    assert await create(am) == "abc-1"
    (request,) = seen
    assert request.url == "http://am.test:9093/api/v2/silences"
    assert request.headers["authorization"] == "Bearer s3cret"
    assert json.loads(request.content) == {
        "matchers": [
            {"name": "alertname", "value": "Pool", "isRegex": False, "isEqual": True},
            {"name": "job", "value": "api.*", "isRegex": True, "isEqual": True},
        ],
        "startsAt": "2026-11-26T09:00:00.000Z",
        "endsAt": "2026-11-26T10:00:00.000Z",
        "createdBy": "U0ALICE",
        "comment": "warroom INC-0001 [warroom:ab12]",
    }


@pytest.mark.parametrize(
    ("answer", "error", "uncertain"),
    [
        (httpx.Response(503, text="overloaded"), Unavailable, True),
        (httpx.ConnectError("refused"), Unavailable, False),
        (httpx.ReadTimeout("no answer"), Unavailable, True),
        (httpx.Response(400, text='"bad matcher"'), Refused, None),
        (httpx.Response(200, json={"unexpected": 1}), Refused, None),
    ],
)
async def test_failures_map_onto_the_port(
    answer: httpx.Response | Exception,
    error: type[Exception],
    uncertain: bool | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def respond(request: httpx.Request) -> httpx.Response:
        if isinstance(answer, Exception):
            raise answer
        return answer

    am = silencer(httpx.MockTransport(respond), monkeypatch)
    with pytest.raises(error) as caught:
        await create(am)
    if uncertain is not None:
        assert isinstance(caught.value, Unavailable)
        assert caught.value.uncertain is uncertain


async def test_an_unknown_target_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    am = silencer(httpx.MockTransport(lambda r: httpx.Response(200)), monkeypatch)
    with pytest.raises(Refused, match="no alertmanager target 'eu'"):
        await create(am, "eu")


async def test_expiring_what_already_ended_is_not_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = {
        "gone": httpx.Response(500, text='"silence not found"'),
        "old": httpx.Response(500, text='"silence old already expired"'),
        "missing": httpx.Response(404),
        "live": httpx.Response(200),
        "broken": httpx.Response(500, text='"disk full"'),
    }
    am = silencer(httpx.MockTransport(lambda r: answers[r.url.path.rsplit("/", 1)[1]]), monkeypatch)
    assert await am.expire("main", "live") is True
    for gone in ("gone", "old", "missing"):
        assert await am.expire("main", gone) is False
    with pytest.raises(Unavailable):
        await am.expire("main", "broken")
