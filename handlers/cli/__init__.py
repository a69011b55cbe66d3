"""The ``warroom`` command: serve, check the config, migrate, and work incidents without Slack.

One module per command group: ``base`` (the group, the context, exit codes), ``server``
(serve, check-config, db), ``replay``, ``postmortem`` and ``incident``.
"""

from __future__ import annotations

from handlers.cli import incident, postmortem, replay, server
from handlers.cli.base import cli, main

__all__ = ["cli", "incident", "main", "postmortem", "replay", "server"]
