"""systemd's service notification protocol (sd_notify), spoken by the daemon.

Under a unit with ``Type=notify``, systemd names a Unix datagram socket in ``$NOTIFY_SOCKET`` (a
path, or an abstract socket when it starts with ``@``) and, with ``WatchdogSec=``, the watchdog
period in ``$WATCHDOG_USEC``. The daemon sends newline-separated ``KEY=value`` datagrams to it:
``READY=1`` once the state and data are loaded, ``STATUS=...`` with its progress, ``WATCHDOG=1``
while it is healthy and ``STOPPING=1`` when it shuts down. Without ``$NOTIFY_SOCKET`` every call
does nothing, so the daemon behaves the same outside systemd.

The protocol is one datagram per message, so these few lines speak it directly rather than
adding a compiled binding to libsystemd as a dependency.
"""

from __future__ import annotations

import logging
import os
import socket
import time

logger = logging.getLogger(__name__)

NOTIFY_SOCKET_ENV = "NOTIFY_SOCKET"
WATCHDOG_USEC_ENV = "WATCHDOG_USEC"
WATCHDOG_PID_ENV = "WATCHDOG_PID"


class Notifier:
    """Sends notifications to systemd when started by it, and nothing otherwise."""

    def __init__(self, address: str | None, watchdog_seconds: float | None = None) -> None:
        self.address = address
        # Pinged at half the period systemd allows, as sd_watchdog_enabled(3) advises.
        self.watchdog_interval = watchdog_seconds / 2 if watchdog_seconds else None
        self._last_ping = float("-inf")
        self._socket: socket.socket | None = None
        if address:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @classmethod
    def from_environment(cls) -> Notifier:
        """The notifier that ``$NOTIFY_SOCKET`` and ``$WATCHDOG_USEC`` describe."""
        address = os.environ.get(NOTIFY_SOCKET_ENV) or None
        watchdog = None
        usec = os.environ.get(WATCHDOG_USEC_ENV, "")
        pid = os.environ.get(WATCHDOG_PID_ENV, "")
        # The watchdog is meant for this process only when WATCHDOG_PID is unset or names it.
        if usec.isdigit() and int(usec) > 0 and pid in ("", str(os.getpid())):
            watchdog = int(usec) / 1e6
        return cls(address, watchdog)

    @property
    def enabled(self) -> bool:
        return self._socket is not None

    def ready(self, status: str) -> None:
        self._send(f"READY=1\nSTATUS={status}")

    def status(self, status: str) -> None:
        self._send(f"STATUS={status}")

    def stopping(self, status: str) -> None:
        self._send(f"STOPPING=1\nSTATUS={status}")

    def watchdog(self) -> None:
        """Tell systemd the daemon is alive, at most once per watchdog interval."""
        if self.watchdog_interval is None:
            return
        now = time.monotonic()
        if now - self._last_ping >= self.watchdog_interval:
            self._send("WATCHDOG=1")
            self._last_ping = now

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def _send(self, message: str) -> None:
        if self._socket is None or self.address is None:
            return
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            # Never blocks: a listener that does not read must not stall the search.
            self._socket.sendto(message.encode(), socket.MSG_DONTWAIT, target)
        except OSError as exc:
            # A lost notification must not stop a search; systemd's timeouts will tell.
            logger.warning("cannot notify systemd at %s: %s", self.address, exc)
