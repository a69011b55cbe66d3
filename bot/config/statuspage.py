"""``statuspage:``: the named public status pages (Atlassian Statuspage) warroom publishes to.

::

    statuspage:
      public:                                  # the target's name (``/incident statuspage``)
        page_id: kctbh9vrtdwd                  # the page's id (Statuspage → API info)
        api_key_env: STATUSPAGE_API_KEY        # the variable holding the API key (never the file)
        url: https://api.statuspage.io         # the API base (the default)
        components:                            # the incident's service → the components it shows
          checkout: [ftgks51sfs2d]
          search: 8kbf7d35c070                 # one id, or a list
        allowed: {roles: [commander, communications], users: [U024BE7LH], groups: [S0614TZR7]}

Who may publish: ``allowed`` (an incident role the person holds on the incident, their Slack
user id, or a Slack user group they are in), by default the incident's commander and
communications lead.
"""

from __future__ import annotations

import os
import re
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from bot.runbooks.model import Allowed

DEFAULT_URL = "https://api.statuspage.io"
DEFAULT_ALLOWED = Allowed(roles=["commander", "communications"])
_ID = re.compile(r"[A-Za-z0-9]{1,40}")
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")


def _ids(value: object) -> object:
    """One component id or a list of them."""
    return [value] if isinstance(value, str) else value


ComponentIds = Annotated[list[str], BeforeValidator(_ids)]


class StatusPageTarget(BaseModel):
    """One Statuspage page; its API key from the environment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    page_id: str = Field(description="the page's id, as Statuspage's API info shows it")
    api_key_env: str = Field(description="variable holding the API key (Authorization: OAuth)")
    url: str = Field(default=DEFAULT_URL, description="API base; /v1 is added")
    components: dict[str, ComponentIds] = Field(
        default_factory=dict, description="service → component ids shown affected"
    )
    allowed: Allowed = Field(
        default=DEFAULT_ALLOWED, description="who may publish: incident roles, users, groups"
    )

    @field_validator("page_id")
    @classmethod
    def _page_id(cls, value: str) -> str:
        if not _ID.fullmatch(value):
            raise ValueError(f"{value!r} is not a Statuspage page id (letters and digits)")
        return value

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL")
        if parts.password is not None or parts.username is not None:
            raise ValueError("this URL holds credentials: put the API key in api_key_env instead")
        return url.rstrip("/").removesuffix("/v1")

    @field_validator("components")
    @classmethod
    def _component_ids(cls, components: dict[str, list[str]]) -> dict[str, list[str]]:
        for service, ids in components.items():
            bad = [i for i in ids if not _ID.fullmatch(i)]
            if bad:
                raise ValueError(f"{service}: {bad[0]!r} is not a component id (letters, digits)")
            if not ids:
                raise ValueError(f"{service}: name at least one component id")
        return components

    @model_validator(mode="after")
    def _key_set(self) -> StatusPageTarget:
        if not os.environ.get(self.api_key_env):
            raise ValueError(f"environment variable {self.api_key_env} is not set")
        if not (self.allowed.roles or self.allowed.users or self.allowed.groups):
            raise ValueError("allowed names nobody: list roles, users or groups who may publish")
        return self

    def api_key(self) -> str | None:
        return os.environ.get(self.api_key_env) or None

    def components_for(self, service: str | None) -> list[str]:
        """The component ids an incident of ``service`` affects (``*`` for any service)."""
        found = list(self.components.get(service or "", [])) if service else []
        found += [i for i in self.components.get("*", []) if i not in found]
        return found


def check_names(targets: dict[str, StatusPageTarget]) -> dict[str, StatusPageTarget]:
    bad = [n for n in targets if not _NAME.fullmatch(n)]
    if bad:
        raise ValueError(f"target names are lowercase letters, digits, - and _: {bad}")
    return targets
