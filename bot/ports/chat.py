"""The chat port: what the core asks of Slack (or of the local transcript).

::

    ChatError
    ├── RateLimited   not applied; try again after ``retry_after`` seconds
    ├── Transient     5xx, timeout, connection lost; ``uncertain`` if it may have been applied
    └── Rejected      a permanent refusal (``code`` is the chat's own, e.g. channel_not_found)

Every posted message carries a ``marker`` (the outbox row's identity). A retry of a
send whose outcome is uncertain first asks :meth:`Chat.find_marked`, so a message is
never posted twice; :meth:`Chat.open_channel` finds the channel it made before
instead of making a second one.

A chat that gives each person a home page (Slack's App Home) is also a :class:`Homes`: the
core says whose home needs showing again and what is on it (:class:`~bot.incidents.home.
HomeView`); the adapter renders and shows it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from bot.incidents.card import CardView
from bot.incidents.home import HomeView


class ChatError(Exception):
    """Base of the chat port's errors."""


class RateLimited(ChatError):
    def __init__(self, retry_after: float, method: str = "") -> None:
        super().__init__(
            f"rate limited{f' on {method}' if method else ''}: retry in {retry_after}s"
        )
        self.retry_after = retry_after


class Transient(ChatError):
    def __init__(self, message: str, *, uncertain: bool) -> None:
        super().__init__(message)
        self.uncertain = uncertain


class Rejected(ChatError):
    def __init__(self, code: str, method: str = "") -> None:
        super().__init__(f"{method + ': ' if method else ''}{code}")
        self.code = code


@dataclass(frozen=True, slots=True)
class ChannelRef:
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class Message:
    """What to post: template text, the incident card, or a reminder about the card's incident."""

    text: str
    card: CardView | None = None
    reminder_overdue_min: int | None = None


class Chat(Protocol):
    @property
    def connected(self) -> bool:
        """False for the local transcript (no Slack)."""
        ...

    async def open_channel(self, name: str, *, private: bool, marker: str) -> ChannelRef:
        """Create ``name``; if it exists and this bot made it (``marker``), return that one."""
        ...

    async def invite(
        self,
        channel: str,
        *,
        users: Sequence[str] = (),
        usergroups: Sequence[str] = (),
        emails: Sequence[str] = (),
    ) -> list[str]:
        """Invite people (already-members are fine); return the user ids invited."""
        ...

    async def set_topic(self, channel: str, topic: str) -> None: ...

    async def post(
        self, channel: str, message: Message, *, marker: str, thread_ts: str | None = None
    ) -> str:
        """Post; return the message's ``ts``."""
        ...

    async def update(self, channel: str, ts: str, message: Message) -> None: ...

    async def pin(self, channel: str, ts: str) -> None:
        """Pin (already pinned is fine)."""
        ...

    async def bookmark(self, channel: str, title: str, url: str) -> None: ...

    async def find_marked(
        self, channel: str, marker: str, *, thread_ts: str | None = None
    ) -> str | None:
        """The ``ts`` of a recent message (or reply in ``thread_ts``) carrying ``marker``."""
        ...

    async def permalink(self, channel: str, ts: str) -> str | None: ...


@runtime_checkable
class Homes(Protocol):
    """A chat with a home page per person (optional: the local transcript has none)."""

    async def member_channels(self, user: str, channels: Sequence[str]) -> set[str]:
        """Which of ``channels`` ``user`` is a member of."""
        ...

    async def publish_home(self, user: str, home: HomeView) -> bool:
        """Show ``home`` as ``user``'s home page (replacing it); False if the chat has no such
        person (a role held by a name typed on the command line, say)."""
        ...
