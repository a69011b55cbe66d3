"""Delivery: from incident changes to messages in the chat, in order, exactly once, retried.

Owns ``outbox`` (rows written with the change that caused them), ``notify`` (which rows a change
writes), ``worker`` (claims rows, calls the chat port, retries and settles them), ``updates``
(status updates and their reminders), ``transcript`` (the chat of local mode) and ``silences``
(silences requested from chat, and the worker's kinds that create and expire them through the
silencing port), ``paging`` (pages triggered, acknowledged and resolved through the paging port
with the changes that cause them, and escalation steps scheduled as rows), ``quiet`` (an
incident quiet in monitoring offered for resolution, and its reminder). May import
``bot.ports``, ``bot.config``, ``bot.runbooks``, ``bot.incidents``, ``bot.store`` and the
foundation. Where is delivery retried: ``worker``.
"""
