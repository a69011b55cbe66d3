"""warroom's core: incidents, alerts, runbooks and post-mortems, with no Slack or web code."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("warroom")
except PackageNotFoundError:  # running from a checkout that was never installed
    __version__ = "0.0.0+checkout"
