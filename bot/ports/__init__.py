"""Ports: what the core asks of the outside world, as small protocols that name a capability.

``chat`` is the chat port (post, update, pin, invite, open a channel); its adapters are the Slack
client in ``handlers/slack`` and the local transcript in ``bot.delivery``. The next capabilities
(page, silence, publish, file a ticket, export) get a module here each; their vendor adapters
live outside ``bot/``. May import ``bot.incidents`` (the data a port carries) and the
foundation; never a vendor library, never ``handlers``.
"""
