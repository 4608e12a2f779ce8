"""systemd notifications, heard on sockets the tests make themselves."""

from __future__ import annotations

import os
import socket
import threading

from edgeevo.notify import Notifier


class NotifyListener:
    """A datagram socket that plays systemd's part: it collects every notification."""

    def __init__(self, address: str) -> None:
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind("\0" + address[1:] if address.startswith("@") else address)
        self.socket.settimeout(0.2)
        self.messages: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                self.messages.append(self.socket.recv(4096).decode())
            except TimeoutError:
                continue

    def close(self) -> list[str]:
        self._stop.set()
        self._thread.join()
        self.socket.close()
        return self.messages


def test_notifications_reach_an_abstract_socket():
    address = f"@edgeevo-test-{os.getpid()}"
    listener = NotifyListener(address)
    notifier = Notifier(address, watchdog_seconds=10.0)
    notifier.ready("0 of 4 candidates complete")
    notifier.watchdog()
    notifier.watchdog()  # within the 5 s interval: not sent again
    notifier.status("1 of 4 candidates complete")
    notifier.stopping("stopping")
    notifier.close()
    deadline = threading.Event()
    while len(listener.messages) < 4 and not deadline.wait(0.05):
        pass
    assert listener.close() == [
        "READY=1\nSTATUS=0 of 4 candidates complete",
        "WATCHDOG=1",
        "STATUS=1 of 4 candidates complete",
        "STOPPING=1\nSTATUS=stopping",
    ]


def test_the_environment_decides_what_is_sent(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    quiet = Notifier.from_environment()
    assert not quiet.enabled and quiet.watchdog_interval is None
    quiet.ready("nothing listens")  # outside systemd: does nothing, raises nothing

    monkeypatch.setenv("NOTIFY_SOCKET", "/run/x.sock")
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert Notifier.from_environment().watchdog_interval == 15.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))  # meant for another process
    assert Notifier.from_environment().watchdog_interval is None


def test_a_listener_that_does_not_read_never_blocks_the_daemon(tmp_path, caplog):
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    silent.bind(str(tmp_path / "n.sock"))
    notifier = Notifier(str(tmp_path / "n.sock"))
    for i in range(200):  # far more than the kernel queues for one socket
        notifier.status(f"{i} of 200")
    assert "cannot notify systemd" in caplog.text
    silent.close()
