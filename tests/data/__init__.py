"""Where the vendored test data lives: the folders beside this file (see README.md here).

Everything the tests and benchmarks read from outside the code is kept in this folder, so a
clone of the repository passes its own tests with nothing beside it.
"""

from __future__ import annotations

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent
PAYLOADS_DIR = DATA_DIR / "payloads"  # real alert bodies, one folder per sender
SLACK_DIR = DATA_DIR / "slack"  # Slack's Web API spec, method facts and signing test vector
SEEDS_DIR = DATA_DIR / "seeds"  # the user's own runbooks the built-ins come from
PAGERDUTY_DIR = DATA_DIR / "pagerduty"  # PagerDuty's Events API v2 description
OPSGENIE_DIR = DATA_DIR / "opsgenie"  # Opsgenie's Alert API description (the alert paths)
