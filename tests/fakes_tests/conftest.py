"""Fixtures: one loopback server for the whole session, a fresh fake Slack per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack_api import (
    BOT_TOKEN,
    FakeSlack,
    FakeSlackHost,
    ManualClock,
    create_fake_slack,
    running_fake_slack_host,
)


@pytest.fixture(scope="session")
def slack_host() -> Iterator[FakeSlackHost]:
    with running_fake_slack_host() as host:
        yield host


@pytest.fixture
def slack_clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def fake(slack_host: FakeSlackHost, slack_clock: ManualClock) -> Iterator[FakeSlack]:
    """A fresh fake on the shared server; fails the test if a call broke Slack's spec."""
    with slack_host.serving(create_fake_slack(clock=slack_clock)) as served:
        yield served
        served.assert_clean()


@pytest.fixture
def client(fake: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token=BOT_TOKEN, base_url=fake.base_url)
