"""Configuration: the one settings object, from environment variables over an optional YAML file.

Owns ``sections`` (one validated model per part of the file) and ``settings`` (the whole object,
how it is loaded and merged, and how every mistake is reported as ``file:line: key: problem``).
May import ``bot.intake`` (severity rules), ``bot.runbooks`` (runbook settings),
``bot.incidents`` (severity schemes) and the foundation.
"""
