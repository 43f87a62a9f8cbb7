"""The worker of NoETL's v2 integration guide, as its code spells it::

    from noetl.worker.executor_v2 import WorkerExecutorV2, QueuePollerV2

    executor = WorkerExecutorV2(worker_id="worker-001", server_url="http://localhost:8082")
    poller = QueuePollerV2(worker_id="worker-001", server_url="http://localhost:8082",
                           executor=executor, poll_interval=1.0)
    await poller.start()

These are thin names over :class:`noetl.runtime.remote_worker.RemoteWorker`, the worker that
leases, heartbeats and reports through the server's API (``noetl worker start --server-url``), so it
needs no database credentials. The API token comes from ``token=`` or ``NOETL_API_TOKEN``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from noetl.runtime.remote_worker import RemoteWorker
from noetl.runtime.worker import WorkerOptions
from noetl.settings import load_settings


@dataclass(slots=True)
class WorkerExecutorV2:
    """How commands run: the worker's name, its server, its token and how many commands at once."""

    worker_id: str
    server_url: str
    token: str | None = field(default_factory=lambda: load_settings().api_token)
    concurrency: int = 8
    lease_seconds: float = 30.0


class QueuePollerV2:
    """Polls the server's queue and runs what it leases with ``executor`` until :meth:`stop`."""

    def __init__(self, worker_id: str, server_url: str, executor: WorkerExecutorV2,
                 poll_interval: float = 1.0) -> None:
        options = WorkerOptions(name=worker_id, concurrency=executor.concurrency,
                                lease_seconds=executor.lease_seconds, poll_interval=poll_interval)
        self.worker = RemoteWorker(server_url or executor.server_url, token=executor.token, options=options)

    async def start(self, *, handle_signals: bool = True) -> None:
        """Run until SIGTERM/SIGINT (or :meth:`stop`); in-flight commands finish and are reported."""
        if handle_signals:
            self.worker.install_signal_handlers()
        await self.worker.run()

    def stop(self) -> None:
        self.worker.request_stop()


__all__ = ["QueuePollerV2", "WorkerExecutorV2"]
