"""A minimal synchronous QMP client (one command at a time) for the ground-truth harness.

Every command sent and every reply is appended to ``log`` as (host monotonic s, direction, JSON), so
a run's provenance can show the exact QMP conversation. Asynchronous events are kept in ``events``.
"""

from __future__ import annotations

import json
import socket
import time
from typing import Any


class QMPError(RuntimeError):
    """QEMU answered a command with an error, or the monitor went away."""


class QMP:
    def __init__(self, path: str, *, connect_timeout: float = 30.0, log_polls: bool = False) -> None:
        self.path = path
        self.events: list[dict[str, Any]] = []
        self.log: list[tuple[float, str, str]] = []
        self.log_polls = log_polls
        deadline = time.monotonic() + connect_timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise QMPError(f"cannot connect to QMP socket {path}") from None
                time.sleep(0.05)
        self.sock.settimeout(120.0)
        self.rfile = self.sock.makefile("r", encoding="utf-8")
        greeting = self._read()
        if "QMP" not in greeting:
            raise QMPError(f"unexpected QMP greeting {greeting}")
        self.greeting = greeting
        self.cmd("qmp_capabilities")

    def _read(self) -> dict[str, Any]:
        line = self.rfile.readline()
        if not line:
            raise QMPError(f"QMP socket {self.path} closed")
        return json.loads(line)

    def cmd(self, name: str, **arguments: Any) -> Any:
        """Execute one command; return its 'return' value; raise QMPError on an 'error' reply."""
        msg: dict[str, Any] = {"execute": name}
        if arguments:
            msg["arguments"] = arguments
        text = json.dumps(msg)
        quiet = name in ("query-migrate", "query-status") and not self.log_polls
        if not quiet:
            self.log.append((time.monotonic(), "->", text))
        self.sock.sendall(text.encode() + b"\n")
        while True:
            reply = self._read()
            if "event" in reply:
                self.events.append(reply)
                continue
            if not quiet:
                self.log.append((time.monotonic(), "<-", json.dumps(reply)))
            if "error" in reply:
                raise QMPError(f"{name}: {reply['error'].get('desc', reply['error'])}")
            return reply.get("return")

    def close(self) -> None:
        try:
            self.rfile.close()
            self.sock.close()
        except OSError:
            pass
