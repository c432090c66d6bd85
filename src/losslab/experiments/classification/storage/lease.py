"""Run ownership as a lease: who may train a run, and when another process may take it over.

A claim writes an owner token (``host:pid:random``), the lease length and its expiry (Unix
time) into the run's row. The owner renews the lease while it trains (:class:`LeaseKeeper`,
every quarter of the lease); finishing, failing, diverging or pausing releases it. Another
invocation, on any host, may take a ``running`` run over once its lease has expired. It may
also do so at once when the owner provably died: same host, same process namespace, and the
owner's process id no longer exists (a cheap check that is never wrong in the "dead"
direction: a reused id looks alive, so the caller waits for the lease instead).
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from losslab.experiments.classification.storage.contract import Claim, RunStore


def owner_token() -> str:
    """A fresh owner token ``host:pid:random`` (unique per claim)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def owner_scope() -> str:
    """Where a process id means this process's namespace: the host name and, on Linux, the
    PID namespace (two containers sharing a host name can then never judge each other's
    process ids)."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    return f"{socket.gethostname()}|{namespace}"


def _pid_of(owner: str) -> int | None:
    parts = owner.split(":")
    # "host:pid:random" (a lease) or "host:pid" (written before leases)
    candidates = parts[-2:-1] if len(parts) >= 3 else parts[-1:]
    try:
        return int(candidates[0]) if candidates else None
    except ValueError:
        return None


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OSError):
        return False
    return False


@dataclass(frozen=True)
class Decision:
    """What a claim may do: ``"claim"`` a free run, ``"take_over"`` from ``reason``, or
    ``"busy"`` (another owner's lease is live)."""

    action: str
    reason: str = ""
    recorded: bool = True  # False: the process's own abandoned claim, not another owner's


def decide(*, owner: str | None, scope: str | None, expires_at: float | None,
           now: float) -> Decision:
    """Whether a ``running`` run held by ``owner`` may be claimed now.

    Args:
        owner: the stored owner token (None: nobody holds the run).
        scope: the stored :func:`owner_scope` of the owner (None for rows written before
            leases).
        expires_at: the stored lease expiry (None for rows written before leases).
        now: the current Unix time.

    Returns:
        The :class:`Decision`.
    """
    if not owner:
        return Decision("claim")
    pid = _pid_of(owner)
    host = owner.split(":", 1)[0]
    ours = scope == owner_scope() if scope is not None else host == socket.gethostname()
    if ours and pid == os.getpid() and not held_here(owner):
        return Decision("take_over", "an abandoned attempt of this process", recorded=False)
    if ours and pid is not None and _process_gone(pid):
        return Decision("take_over", f"process {pid} on this host is gone")
    if expires_at is None:
        # Written before leases: the owner never renews, so only "not provably alive" counts.
        if ours and pid is not None:
            return Decision("busy")
        return Decision("take_over", "claimed before leases existed, by another host")
    if expires_at <= now:
        return Decision("take_over", f"its lease expired {now - expires_at:.0f} s ago")
    return Decision("busy")


# Tokens whose lease a LeaseKeeper of this process is renewing right now: a claim found under
# this process's id but not here was abandoned (an interrupted call in the same interpreter).
_HELD: set[str] = set()
_HELD_LOCK = threading.Lock()


def held_here(owner: str) -> bool:
    """Whether a :class:`LeaseKeeper` of this process is renewing ``owner``'s lease."""
    with _HELD_LOCK:
        return owner in _HELD


class LeaseKeeper:
    """Renew claims from a background thread every ``lease_seconds / 4`` while runs train.

    Use as a context manager around the training of claimed runs::

        claim = store.claim(run_id, environment)
        with LeaseKeeper(store, claim):
            train(...)

    or keep one for many runs (a driver of remote workers) and :meth:`add` / :meth:`discard`
    claims as runs start and end. The thread renews through its own handle to the store
    (:meth:`RunStore.renewer`), never the caller's connection. A claim whose renewal finds the
    lease gone (another owner took the run over after a stall) is listed in :attr:`lost`.
    """

    def __init__(self, store: RunStore, *claims: Claim) -> None:
        self._store = store
        self._claims: dict[int, Claim] = {}
        self._lock = threading.Lock()
        self.lost: set[int] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        for claim in claims:
            self.add(claim)

    def add(self, claim: Claim) -> None:
        """Keep renewing ``claim`` (until :meth:`discard` or the end of the context)."""
        with self._lock:
            self._claims[claim.run_id] = claim
        with _HELD_LOCK:
            _HELD.add(claim.owner)

    def discard(self, run_id: int) -> None:
        """Stop renewing the claim on ``run_id`` (it finished, failed or paused)."""
        with self._lock:
            claim = self._claims.pop(run_id, None)
        if claim is not None:
            with _HELD_LOCK:
                _HELD.discard(claim.owner)

    def __enter__(self) -> LeaseKeeper:
        self._thread = threading.Thread(target=self._run, name="losslab-lease", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        for run_id in list(self._claims):
            self.discard(run_id)

    def _interval(self) -> float:
        with self._lock:
            shortest = min((c.lease_seconds for c in self._claims.values()), default=4.0)
        return max(0.05, shortest / 4)

    def _run(self) -> None:
        renewer = self._store.renewer()
        try:
            while not self._stop.wait(self._interval()):
                with self._lock:
                    claims = list(self._claims.values())
                for claim in claims:
                    try:
                        kept = renewer.renew(claim.run_id, claim.owner)
                    except Exception:  # a locked database: try again at the next beat
                        continue
                    if not kept:
                        self.lost.add(claim.run_id)
                        self.discard(claim.run_id)
        finally:
            if renewer is not self._store:
                renewer.close()


def now() -> float:
    """The current Unix time (leases compare wall clocks across hosts)."""
    return time.time()
