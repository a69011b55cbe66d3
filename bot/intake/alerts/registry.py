"""Which parser reads which source's webhook bodies.

``PARSERS`` maps a source type name (as configured for an endpoint) to a pure
function ``body -> Delivery`` that raises only ``PayloadError``.  A user's own
source joins with :func:`register_parser`.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from bot.intake.alerts import alertmanager, datadog, events, grafana, pagerduty
from bot.intake.alerts.model import Delivery

Parser = Callable[[object], Delivery]

PARSERS: dict[str, Parser] = {
    alertmanager.SOURCE: alertmanager.parse,
    grafana.SOURCE: grafana.parse,
    pagerduty.SOURCE: pagerduty.parse,
    datadog.SOURCE: datadog.parse,
    events.SOURCE: events.parse,
}

_NAME = re.compile(r"[a-z][a-z0-9_-]*", re.ASCII)


def register_parser(name: str, fn: Parser, *, replace: bool = False) -> None:
    """Make ``fn`` the parser for source type ``name``.

    ``name`` is lower case letters, digits, ``_`` and ``-``, starting with a
    letter.  Registering a name that already has a parser is an error unless
    ``replace`` is true.  ``fn`` must follow the parsers' contract: return a
    ``Delivery`` or raise ``PayloadError``.
    """
    if not _NAME.fullmatch(name):
        raise ValueError(
            f"parser name {name!r} must be lower case letters, digits, '_' or '-', "
            "starting with a letter"
        )
    if not callable(fn):
        raise TypeError(f"parser for {name!r} is not callable: {fn!r}")
    if name in PARSERS and not replace and PARSERS[name] is not fn:
        raise ValueError(f"a parser for {name!r} is already registered (pass replace=True)")
    PARSERS[name] = fn


def get_parser(name: str) -> Parser:
    """The parser for source type ``name``; ``KeyError`` lists the known ones."""
    try:
        return PARSERS[name]
    except KeyError:
        known = ", ".join(sorted(PARSERS))
        raise KeyError(f"no parser for source type {name!r} (known: {known})") from None
