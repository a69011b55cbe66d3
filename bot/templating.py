"""Jinja2 templates: the user's directory first, then the ones warroom ships.

Shipped templates live in ``templates/`` at the top of a checkout and in
``bot/templates`` inside an installed wheel; :func:`shipped_templates_dir`
finds whichever exists. Text templates (``*.txt.j2``, ``*.md.j2``) are not
HTML-escaped; HTML templates (``*.html.j2``) are.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2


def shipped_templates_dir() -> Path:
    here = Path(__file__).resolve().parent
    for candidate in (here / "templates", here.parent / "templates"):
        if (candidate / "messages").is_dir():
            return candidate
    raise FileNotFoundError(
        f"warroom's templates are missing: looked in {here / 'templates'} and "
        f"{here.parent / 'templates'}; reinstall the package"
    )


class Templates:
    def __init__(self, user_dir: Path | None = None, *, timezone: str = "UTC") -> None:
        search = [str(user_dir)] if user_dir else []
        search.append(str(shipped_templates_dir()))
        self.zone = ZoneInfo(timezone)
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(search),
            autoescape=jinja2.select_autoescape(
                enabled_extensions=("html.j2",), default_for_string=False
            ),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
        )
        self.env.filters["utc"] = _utc
        self.env.filters["local"] = self._local

    def render(self, name: str, **context: Any) -> str:
        return self.env.get_template(name).render(**context)

    def _local(self, value: datetime | None) -> str:
        if value is None:
            return "—"
        return value.astimezone(self.zone).strftime("%Y-%m-%d %H:%M %Z")


def _utc(value: datetime | None) -> str:
    return "—" if value is None else value.strftime("%Y-%m-%d %H:%M UTC")
