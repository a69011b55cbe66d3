"""The composition of the core: settings in, long-lived services out.

Built once per process by the entry point (the ASGI lifespan, or a CLI
command); nothing here runs at import time.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field

from bot.clock import Clock, SystemClock
from bot.config.settings import Settings
from bot.delivery.exports import Exports
from bot.delivery.home import HomeListener
from bot.delivery.notify import Notifier
from bot.delivery.outbox import Deliver
from bot.delivery.paging import PageListener, Paging, PagingPolicy
from bot.delivery.silences import Silences
from bot.delivery.statuspage import StatusPageDelivery, StatusPageListener, StatusPages
from bot.delivery.tickets import TicketDelivery, TicketListener, TicketPolicy, Tickets
from bot.delivery.transcript import TranscriptChat
from bot.delivery.updates import Updates
from bot.delivery.worker import DeliveryWorker
from bot.incidents.lifecycle import Incidents
from bot.intake.classify import Classifier
from bot.intake.fold import Intake, IntakePolicy
from bot.ports.chat import Chat
from bot.ports.paging import Pager
from bot.ports.silencing import Silencer
from bot.runbooks import Runbooks
from bot.store.cache import SharedCache
from bot.store.db import Database
from bot.store.replay import ReplayGuard
from bot.templating import Templates


@dataclass
class Core:
    settings: Settings
    clock: Clock
    db: Database
    incidents: Incidents
    templates: Templates
    cache: SharedCache
    classifier: Classifier
    intake: Intake
    updates: Updates
    runbooks: Runbooks
    _guards: dict[str, ReplayGuard] = field(default_factory=dict, init=False, repr=False)

    @classmethod
    def build(cls, settings: Settings, *, clock: Clock | None = None) -> Core:
        clock = clock or SystemClock()
        db = database(settings)
        incidents = Incidents(
            db,
            clock=clock,
            scheme=settings.severity_scheme(),
            roles=settings.incidents.roles,
            key_prefix=settings.incidents.key_prefix,
            key_digits=settings.incidents.key_digits,
        )
        templates = Templates(settings.templates_dir, timezone=settings.incidents.timezone)
        incidents.listeners.append(
            Notifier(
                templates=templates,
                scheme=incidents.scheme,
                routing=settings.slack.routing,
                broadcast=settings.slack.broadcast_channel,
                auto_diagnose=settings.runbooks.auto_diagnose,
            )
        )
        # Paging rows after the channel's, in the same transaction (``bot.delivery.paging``).
        incidents.listeners.append(PageListener(PagingPolicy.from_settings(settings)))
        # Status page outcomes in the channel; the offer to resolve it (bot.delivery.statuspage).
        incidents.listeners.append(StatusPageListener())
        # Follow-ups filed as tickets, and the outcomes told (``bot.delivery.tickets``).
        incidents.listeners.append(TicketListener(TicketPolicy.from_settings(settings)))
        if settings.slack.connected:  # the role holders' App Home (``bot.delivery.home``)
            incidents.listeners.append(HomeListener(clock, settings.slack.home_refresh))
        classifier = settings.severity.classifier()
        policy = IntakePolicy(
            reopen_window=settings.intake.reopen_window,
            group_window=settings.intake.group_window,
            when_all_resolved=settings.intake.when_all_resolved,
            service_labels=tuple(settings.intake.service_labels),
        )
        intake = Intake(db, incidents, classifier, clock=clock, policy=policy)
        cache = SharedCache(settings.redis.url)
        updates = Updates(incidents, templates, clock)
        runbooks = Runbooks.load(db, incidents, settings.runbooks)
        return cls(
            settings, clock, db, incidents, templates, cache, classifier, intake, updates, runbooks
        )

    @functools.cached_property
    def silences(self) -> Silences:
        """Silences from chat: preview, request, unsilence (``bot.delivery.silences``)."""
        return Silences(self.db, self.incidents, self.settings, clock=self.clock)

    @functools.cached_property
    def exports(self) -> Exports:
        """Post-mortem exports: ``/incident postmortem export`` (``bot.delivery.exports``)."""
        return Exports(self.db, self.incidents, self.settings, clock=self.clock)

    @functools.cached_property
    def statuspage(self) -> StatusPages:
        """The public status page: preview, then publish (``bot.delivery.statuspage``)."""
        return StatusPages(self.db, self.incidents, self.settings, self.templates, clock=self.clock)

    @functools.cached_property
    def tickets(self) -> Tickets:
        """Follow-ups filed as tickets: ``/incident followup file`` (``bot.delivery.tickets``)."""
        return Tickets(self.db, self.incidents, TicketPolicy.from_settings(self.settings))

    @functools.cached_property
    def paging(self) -> Paging:
        """Paging by hand: ``/incident page <target>`` (``bot.delivery.paging``)."""
        return Paging(self.db, self.incidents, PagingPolicy.from_settings(self.settings))

    def delivery(
        self,
        chat: Chat | None = None,
        *,
        worker_id: str | None = None,
        silencer: Silencer | None = None,
        pager: Pager | None = None,
        kinds: Mapping[str, Deliver] | None = None,
    ) -> DeliveryWorker:
        """A delivery worker to ``chat`` (the local transcript when none is given) and, for
        silences, to ``silencer`` (the handlers inject the adapter, e.g. Alertmanager's)."""
        slack = self.settings.slack
        worker = DeliveryWorker(
            self.db,
            chat or TranscriptChat(self.db, self.clock),
            self.incidents,
            clock=self.clock,
            channel_pattern=slack.channel_pattern,
            private_channels=slack.private_channels,
            broadcast=slack.broadcast_channel,
            public_url=self.settings.server.public_url,
            worker_id=worker_id,
            runbooks=self.runbooks,
            silencer=silencer,
            pager=pager,
            paging=PagingPolicy.from_settings(self.settings),
            # Status page rows wait (NoAdapter) in a process without the adapter's kinds.
            kinds={
                **StatusPageDelivery(self.db, self.incidents, None, clock=self.clock).kinds(),
                **TicketDelivery(
                    self.db, self.incidents, None, TicketPolicy.from_settings(self.settings)
                ).kinds(),
                **(kinds or {}),
            },
            home_every=slack.home_refresh,
        )
        worker.status_page_ready = bool(self.settings.statuspage)
        return worker

    def intake_on(self, db: Database) -> Intake:
        """This core's intake, working on ``db`` (another event loop's connections: the
        intake folder's thread)."""
        incidents = copy.copy(self.incidents)
        incidents.db = db
        intake = copy.copy(self.intake)
        intake.db, intake.incidents = db, incidents
        return intake

    def replay_guard(self, scope: str) -> ReplayGuard:
        """The guard against replayed and retried requests of ``scope``, closed with the core."""
        if scope not in self._guards:
            self._guards[scope] = ReplayGuard(self.db, self.cache, self.clock, scope=scope)
        return self._guards[scope]

    async def close(self) -> None:
        guards, self._guards = self._guards, {}
        for guard in guards.values():
            await guard.close()
        await self.cache.close()
        await self.db.dispose()


def database(settings: Settings, *, pool_size: int | None = None) -> Database:
    """The configured database (a new engine: one per event loop that uses it)."""
    return Database(
        settings.database.url,
        connect_timeout=settings.database.connect_timeout.total_seconds(),
        pool_size=pool_size or settings.database.pool_size,
    )
