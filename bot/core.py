"""The composition of the core: settings in, long-lived services out.

Built once per process by the entry point (the ASGI lifespan, or a CLI
command); nothing here runs at import time.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.cache import SharedCache
from bot.classify import Classifier
from bot.clock import Clock, SystemClock
from bot.db import Database
from bot.incidents import Incidents
from bot.intake import Intake, IntakePolicy
from bot.settings import Settings
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

    @classmethod
    def build(cls, settings: Settings, *, clock: Clock | None = None) -> Core:
        clock = clock or SystemClock()
        db = Database(
            settings.database.url,
            connect_timeout=settings.database.connect_timeout.total_seconds(),
            pool_size=settings.database.pool_size,
        )
        incidents = Incidents(
            db,
            clock=clock,
            scheme=settings.severity_scheme(),
            roles=settings.incidents.roles,
            key_prefix=settings.incidents.key_prefix,
            key_digits=settings.incidents.key_digits,
        )
        templates = Templates(settings.templates_dir, timezone=settings.incidents.timezone)
        classifier = settings.severity.classifier()
        policy = IntakePolicy(
            reopen_window=settings.intake.reopen_window,
            group_window=settings.intake.group_window,
            when_all_resolved=settings.intake.when_all_resolved,
        )
        intake = Intake(db, incidents, classifier, clock=clock, policy=policy)
        cache = SharedCache(settings.redis.url)
        return cls(settings, clock, db, incidents, templates, cache, classifier, intake)

    async def close(self) -> None:
        await self.cache.close()
        await self.db.dispose()
