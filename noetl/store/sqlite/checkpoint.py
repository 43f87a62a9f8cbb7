"""WAL checkpoints of the embedded store on their own thread and connection.

A checkpoint copies the WAL's frames into the database file and fsyncs both (``synchronous=NORMAL``
syncs at checkpoints only). SQLite's automatic checkpoint runs inside the commit that fills the WAL
to ``wal_autocheckpoint`` pages, so every ~250th event commit of a run waited 20-25 ms for two
fsyncs: about 0.07 ms of every step of a chain. Here the same PASSIVE checkpoint, about as often,
runs on a daemon thread with a connection of its own; sqlite3 releases the GIL while it waits on the
disk, and a PASSIVE checkpoint never blocks a writer, so commits go on meanwhile.

What reaches the disk when is unchanged: commits are written to the WAL (and survive a crash of the
process), and are fsynced at the next checkpoint. The writer's own automatic checkpoint stays on at
a higher threshold as a backstop, should this thread fall behind or fail.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

log = logging.getLogger(__name__)

# SQLite's default wal_autocheckpoint is 1,000 pages; a commit of one step's events writes about four.
CHECKPOINT_EVERY = 250  # weighted commits (below) between two checkpoints
BACKSTOP_PAGES = 4_000  # wal_autocheckpoint of the writing connection while a checkpointer runs
ROWS_PER_COMMIT_WEIGHT = 4  # a commit of many rows counts as more than one
STOP_TIMEOUT_SECONDS = 5.0


class Checkpointer:
    """Wakes a thread to checkpoint the WAL of ``path`` every ``every`` weighted commits."""

    def __init__(self, path: str, *, busy_timeout_ms: int, every: int = CHECKPOINT_EVERY) -> None:
        self._path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._every = every
        self._pending = 0
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def committed(self, rows: int) -> None:
        """After a commit of ``rows`` rows (on the writer's thread, under the store's lock)."""
        self._pending += 1 + rows // ROWS_PER_COMMIT_WEIGHT
        if self._pending < self._every:
            return
        self._pending = 0
        with self._lock:
            if self._stopping:
                return
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="noetl-sqlite-checkpoint", daemon=True)
                self._thread.start()
        self._wake.set()

    def stop(self) -> None:
        """Let a checkpoint in progress finish, then end the thread (before the writer closes, so
        the writer's close remains the last one and checkpoints what is left)."""
        with self._lock:
            self._stopping = True
            thread = self._thread
        self._wake.set()
        if thread is not None:
            thread.join(STOP_TIMEOUT_SECONDS)

    def _work(self) -> None:
        try:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False,
                                   timeout=self._busy_timeout_ms / 1000)
        except sqlite3.Error as exc:
            log.debug("no background checkpoints for %s: %s", self._path, exc)
            return
        try:
            conn.execute("PRAGMA synchronous = NORMAL")
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._stopping:
                    return
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:  # the writer's automatic checkpoint takes over
            log.debug("background checkpoints of %s stopped: %s", self._path, exc)
        finally:
            conn.close()
