"""The incident: its lifecycle, its severity scheme, what its card shows, and reports over many.

Owns ``lifecycle`` (declare, acknowledge, classify, move, staff, note, resolve; each change and
its timeline event one transaction), ``severity`` (schemes and levels), ``card`` (the card as
data, for any chat to render), ``channel`` (the incident channel's name), ``silences`` (a
silence's matchers and previewed plan, and which are open, read from the timeline) and
``reports``.
May import ``bot.store`` and the foundation.
"""
