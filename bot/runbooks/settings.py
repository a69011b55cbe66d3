"""The ``runbooks:`` section of the settings, ready for ``bot.config.settings.Settings`` to embed.

::

    runbooks:
      builtin: true                # the runbooks shipped in bot/runbooks/builtin
      paths: [./runbooks]          # your files or directories; an id that is built in replaces it
      auto_diagnose: true          # run the matched runbooks' diagnostics when an incident opens
      pending_ttl: 15m             # a preview not confirmed by then must be requested again
      max_rows: 200                # rows kept per result
      grants:                      # who else may run mitigations ("*", runbook, runbook.step)
        "*": {groups: [S0614TZR7]}
        cache-failure.flushdb: {users: [U024BE7LH]}
      targets: {…}                 # see bot.runbooks.targets
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bot.runbooks.model import Allowed
from bot.runbooks.params import Duration
from bot.runbooks.targets import TargetsConfig


class RunbookSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    builtin: bool = Field(default=True, description="Load the runbooks shipped with warroom.")
    paths: list[Path] = Field(
        default_factory=list, description="Your runbook files or directories."
    )
    targets: TargetsConfig = TargetsConfig()
    auto_diagnose: bool = Field(
        default=True, description="Run the matched runbooks' diagnostics when an incident opens."
    )
    pending_ttl: Duration = Field(
        default=timedelta(minutes=15),
        description="A previewed mitigation must be confirmed within this time.",
    )
    max_rows: int = Field(default=200, ge=1, le=1000, description="Rows kept per step result.")
    grants: dict[str, Allowed] = Field(
        default_factory=dict,
        description='Who else may run mitigations: "*", "<runbook>" or "<runbook>.<step>".',
    )

    @field_validator("pending_ttl")
    @classmethod
    def _ttl(cls, value: timedelta) -> timedelta:
        if not timedelta(seconds=10) <= value <= timedelta(hours=24):
            raise ValueError("pending_ttl must be between 10s and 24h")
        return value

    def grant_for(self, runbook: str, step: str) -> Allowed:
        """Everyone the grants add for ``runbook.step``."""
        total = Allowed()
        for key in ("*", runbook, f"{runbook}.{step}"):
            if key in self.grants:
                total = total.merged(self.grants[key])
        return total
