"""The real Alertmanager (Debian's prometheus-alertmanager) as a process for a test."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.conftest import service_missing
from tests.waiting import wait_for


def alertmanager_binary() -> str:
    """The installed binary; a missing one skips locally and fails under CI."""
    found = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if found is None:
        service_missing(
            "Alertmanager (prometheus-alertmanager)",
            "Install it: apt-get install prometheus-alertmanager.",
        )
    assert found is not None
    return found


@contextlib.contextmanager
def running_alertmanager(config: str, workdir: Path, port: int) -> Iterator[str]:
    """Alertmanager with ``config`` (YAML) on 127.0.0.1:``port``, ready; yields its URL."""
    binary = alertmanager_binary()
    config_file = workdir / "alertmanager.yml"
    config_file.write_text(config)
    log_file = workdir / "alertmanager.log"
    with log_file.open("w") as log:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config_file}",
                f"--storage.path={workdir / 'am-data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            try:
                return httpx.get(f"{url}/-/ready", timeout=1).status_code == 200
            except httpx.TransportError:
                assert process.poll() is None, log_file.read_text()
                return False

        try:
            wait_for("Alertmanager to start", ready, seconds=30, every=0.2)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=10)
