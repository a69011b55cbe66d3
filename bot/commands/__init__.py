"""``/incident`` commands: the text parsed into typed commands, and each run against the core.

Owns ``parse`` (pure: text in, a command or a usage error out) and ``run`` (a command executed
against :class:`bot.core.Core`, with the answer to give). Sits at the top of the core beside
``bot.core``: it may import any package of ``bot``, and only ``handlers`` import it.
"""
