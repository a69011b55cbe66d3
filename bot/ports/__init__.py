"""Ports: what the core asks of the outside world, as small protocols that name a capability.

``chat`` is the chat port (post, update, pin, invite, open a channel); its adapters are the Slack
client in ``handlers/slack`` and the local transcript in ``bot.delivery``. ``silencing`` is the
silencing port (create and expire alert silences); its adapter is Alertmanager's, in
``integrations/``. ``paging`` is the paging port (trigger, acknowledge, resolve an on-call
alert); its adapters are PagerDuty's and Opsgenie's, in ``integrations/``. ``statuspage``
(publish to a public status page), ``tickets`` (file a follow-up in a tracker, read its state
back) and ``export`` (keep the post-mortem where the organisation keeps its reviews) share the
errors of ``errors``; their vendor adapters live in ``integrations/``, outside ``bot/``. May import
``bot.incidents`` (the data a port carries) and the foundation; never a vendor library, never
``handlers``.
"""
