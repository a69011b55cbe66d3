"""Rate limits (token buckets on an injected clock), 429 + Retry-After, and injected failures."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import FixedValueRetryIntervalCalculator
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack_api import (
    BOT_TOKEN,
    FakeSlack,
    FakeSlackHost,
    ManualClock,
    create_fake_slack,
)
from tests.fakes.slack_state import ALICE
from tests.fakes_tests.support import new_channel, slack_error

BEARER = {"Authorization": f"Bearer {BOT_TOKEN}"}


async def test_tier_2_allows_20_a_minute_then_429_with_retry_after(
    client: AsyncWebClient, fake: FakeSlack, slack_clock: ManualClock
) -> None:
    for number in range(20):
        await client.conversations_create(name=f"inc-{number}")

    limited = await slack_error(client.conversations_create(name="inc-20"))

    assert limited.response.status_code == 429
    assert limited.response.data == {"ok": False, "error": "ratelimited"}
    assert limited.response.headers["Retry-After"] == "3"
    assert fake.ratelimited_count == 1
    with pytest.raises(LookupError):
        fake.channel_by_name("inc-20")
    slack_clock.advance(3)
    await client.conversations_create(name="inc-20")
    assert fake.channel_by_name("inc-20")


@pytest.mark.parametrize(
    ("method", "per_minute"), [("conversations.info", 50), ("users.info", 100)]
)
async def test_tiers_3_and_4(
    fake: FakeSlack, slack_clock: ManualClock, method: str, per_minute: int
) -> None:
    args = {"channel": fake.channel_by_name("incidents").id, "user": ALICE.id}
    params = {k: v for k, v in args.items() if k in fake.spec.methods[method].args}
    async with httpx.AsyncClient(base_url=fake.base_url, headers=BEARER) as http:
        statuses = [
            (await http.get(method, params=params)).status_code for _ in range(per_minute + 1)
        ]
        assert statuses == [200] * per_minute + [429]
        slack_clock.advance(60 / per_minute)
        assert (await http.get(method, params=params)).status_code == 200


async def test_post_message_is_limited_per_channel(
    client: AsyncWebClient, fake: FakeSlack, slack_clock: ManualClock
) -> None:
    one = await new_channel(client, fake, "inc-a")
    two = await new_channel(client, fake, "inc-b")

    for _ in range(3):
        await client.chat_postMessage(channel=one.id, text="burst")
    limited = await slack_error(client.chat_postMessage(channel=one.id, text="too fast"))
    await client.chat_postMessage(channel=two.id, text="other channel is fine")
    slack_clock.advance(1)
    await client.chat_postMessage(channel=one.id, text="a second later")

    assert limited.response.headers["Retry-After"] == "1"
    assert [m.text for m in fake.messages(one.id)] == ["burst"] * 3 + ["a second later"]


async def test_rate_limit_scale_makes_time_run_faster(slack_host: FakeSlackHost) -> None:
    clock = ManualClock()
    fake = create_fake_slack(clock=clock, rate_limit_scale=60.0)
    with slack_host.serving(fake):
        client = AsyncWebClient(token=BOT_TOKEN, base_url=fake.base_url)
        for number in range(20):
            await client.conversations_create(name=f"inc-{number}")
        await slack_error(client.conversations_create(name="inc-20"))
        clock.advance(0.05)  # scaled 60x, Tier 2 refills 20 calls a second
        await client.conversations_create(name="inc-20")
        assert fake.ratelimited_count == 1


async def test_rate_limits_can_be_disabled(slack_host: FakeSlackHost) -> None:
    fake = create_fake_slack(clock=ManualClock(), rate_limits=False)
    with slack_host.serving(fake):
        client = AsyncWebClient(token=BOT_TOKEN, base_url=fake.base_url)
        for number in range(30):
            await client.conversations_create(name=f"inc-{number}")
    assert fake.ratelimited_count == 0
    assert len(fake.workspace.channels) == 32


@pytest.fixture
def real_time_fake(slack_host: FakeSlackHost) -> Iterator[FakeSlack]:
    with slack_host.serving(create_fake_slack()) as fake:
        yield fake
        fake.assert_clean()


async def test_slack_sdk_rate_limit_retry_handler_recovers(real_time_fake: FakeSlack) -> None:
    fake = real_time_fake
    channel = fake.channel_by_name("incidents").id
    client = AsyncWebClient(
        token=BOT_TOKEN,
        base_url=fake.base_url,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=2)],
    )
    for _ in range(3):
        await client.chat_postMessage(channel=channel, text="burst")

    started = time.monotonic()
    response = await client.chat_postMessage(channel=channel, text="after waiting")

    assert response["ok"] is True
    assert time.monotonic() - started >= 0.9
    assert fake.ratelimited_count >= 1
    assert fake.messages(channel)[-1].text == "after waiting"


async def test_slack_sdk_server_error_retry_handler_recovers(real_time_fake: FakeSlack) -> None:
    fake = real_time_fake
    fake.fail_next("auth.test", times=2, status=503)
    client = AsyncWebClient(
        token=BOT_TOKEN,
        base_url=fake.base_url,
        retry_handlers=[
            AsyncServerErrorRetryHandler(
                max_retry_count=2, interval_calculator=FixedValueRetryIntervalCalculator(0.01)
            )
        ],
    )

    response = await client.auth_test()

    assert response["ok"] is True
    assert [c.status for c in fake.calls_to("auth.test")] == [503, 503, 200]


async def test_fail_next_with_after_effect_loses_only_the_answer(
    client: AsyncWebClient, fake: FakeSlack
) -> None:
    fake.fail_next("conversations.create", status=500, after_effect=True)

    failure = await slack_error(client.conversations_create(name="inc-lost"))
    again = await slack_error(client.conversations_create(name="inc-lost"))

    assert failure.response.status_code == 500
    assert failure.response["error"] == "internal_error"
    assert fake.channel_by_name("inc-lost")
    assert again.response["error"] == "name_taken"


async def test_fail_next_429_counts_as_ratelimited(client: AsyncWebClient, fake: FakeSlack) -> None:
    fake.fail_next("auth.test", times=2, status=429, retry_after=7)

    first = await slack_error(client.auth_test())
    await slack_error(client.auth_test())
    await client.auth_test()

    assert first.response.headers["Retry-After"] == "7"
    assert fake.ratelimited_count == 2


async def _statuses(failure_rate: float, seed: int, calls: int) -> list[int]:
    fake = create_fake_slack(failure_rate=failure_rate, seed=seed, rate_limits=False)
    transport = httpx.ASGITransport(app=fake.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://slack.test/api/") as http:
        responses = [await http.post("auth.test", headers=BEARER) for _ in range(calls)]
    for response in responses:
        if response.status_code == 429:
            assert int(response.headers["Retry-After"]) >= 1
            assert response.json() == {"ok": False, "error": "ratelimited"}
    return [r.status_code for r in responses]


async def test_failure_rate_is_seeded_and_mixes_429_and_500() -> None:
    first = await _statuses(0.3, seed=11, calls=200)
    second = await _statuses(0.3, seed=11, calls=200)
    other = await _statuses(0.3, seed=12, calls=200)

    assert first == second
    assert first != other
    assert {429, 500, 200} == set(first)
    assert 40 <= sum(1 for s in first if s != 200) <= 80


async def test_views_publish_is_tier_4(
    client: AsyncWebClient, fake: FakeSlack, slack_clock: ManualClock
) -> None:
    view = {"type": "home", "blocks": []}
    for _ in range(100):
        await client.views_publish(user_id=ALICE.id, view=view)

    limited = await slack_error(client.views_publish(user_id=ALICE.id, view=view))

    assert limited.response.status_code == 429
    assert limited.response.headers["Retry-After"] == "1"
    slack_clock.advance(0.6)
    await client.views_publish(user_id=ALICE.id, view=view)
