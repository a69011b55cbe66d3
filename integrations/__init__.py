"""Vendor adapters: each implements a port of ``bot.ports`` against one vendor's API.

``alertmanager`` implements the silencing port (``bot.ports.silencing``) with Alertmanager's
API v2; ``pagerduty`` the paging port (``bot.ports.paging``) with PagerDuty's
Events API v2. The handlers compose them into the core (``handlers/app.py``); nothing in ``bot/``
imports this package. May import ``bot`` (ports, settings, the data they carry) and vendor
clients (httpx); never ``handlers``.
"""
