"""Delivery: from incident changes to messages in the chat, in order, exactly once, retried.

Owns ``outbox`` (rows written with the change that caused them), ``notify`` (which rows a change
writes), ``worker`` (claims rows, calls the chat port, retries and settles them), ``updates``
(status updates and their reminders) and ``transcript`` (the chat of local mode). May import
``bot.ports``, ``bot.config``, ``bot.runbooks``, ``bot.incidents``, ``bot.store`` and the
foundation. Where is delivery retried: ``worker``.
"""
