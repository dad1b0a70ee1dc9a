"""Time limits and cancellation shared by every step of one probe.

Each network step waits at most `timeout` seconds, and never past the probe's overall deadline.
Cancelling (Ctrl-C, deadline) closes every socket still open so blocked threads return at once.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time


class Cancelled(Exception):
    """The probe was interrupted or its deadline passed before this step could run."""


class Budget:
    """The per-step timeout, the overall deadline and the cancellation switch of one probe."""

    def __init__(self, timeout: float, deadline: float) -> None:
        self.timeout = timeout
        self.deadline = deadline
        self.started = time.monotonic()
        self._cancelled = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def remaining(self) -> float:
        return self.deadline - self.elapsed()

    def expired(self) -> bool:
        # A small margin: a step cut by the deadline ends a hair before it.
        return self.remaining() <= 0.01

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def limit(self) -> float:
        """Seconds the next step may wait; raises Cancelled when nothing is left."""
        if self.cancelled:
            raise Cancelled("interrupted")
        remaining = self.remaining()
        if remaining <= 0.01:
            raise Cancelled("overall deadline reached")
        return min(self.timeout, remaining)

    def cut_short(self) -> bool:
        """True when a timeout that just happened is due to the deadline or cancellation rather
        than the step's own timeout (so it says nothing about the server)."""
        return self.cancelled or self.expired()

    def register(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)
        if self.cancelled:
            self._close(sock)

    def unregister(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)

    def cancel(self) -> None:
        """Stop the probe: later steps raise Cancelled and open sockets are shut down."""
        self._cancelled.set()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            self._close(sock)

    @staticmethod
    def _close(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
