"""Alert intake: parse a sender's webhook, classify its severity, fold it into incidents.

Owns ``alerts`` (one parser per sender, pure: bytes in, typed alerts out), ``classify``
(severity rules over labels, annotations and values), ``fold`` (deliveries folded into
incidents in one transaction: repeats and resolves join their incident) and ``batch`` (the
server's queue: concurrent deliveries folded together, each answered after its commit). May import
``bot.incidents``, ``bot.store`` and the foundation; ``alerts`` imports nothing of warroom's
but itself.
"""
