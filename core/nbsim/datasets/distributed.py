"""A dataset's blocks rendered on Dask: local worker processes, or an existing cluster.

Each block (:func:`nbsim.datasets.run.blocks`: a NeXus shard, or a run of images) is one
task, which renders the block's missing images and writes their files on the worker. Files are
written whole and depend only on (command line, image), so a task that Dask runs again after
its worker was lost writes the same bytes; the manifest, experiment list and NeXus master are
then written by the client, as in a one-process run. Paths go to the workers made absolute:
a cluster's workers must see the same file system (Slurm and PBS clusters: start them with
dask-jobqueue and pass the scheduler's address, ``docs/datasets.md``).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import pickle
from collections.abc import Callable

import attrs

from nbsim.errors import UsageError

#: tasks per worker where work is split for workers: a slow task or a lost worker then leaves
#: the others something to do
TASKS_PER_WORKER = 4


def task_size(items: int, most: int, parallelism: int | None) -> int:
    """Items per task: ``most`` in one process, or fewer where that gives each of
    ``parallelism`` workers about :data:`TASKS_PER_WORKER` tasks (ten items in tasks of ten
    would leave all but one worker idle)."""
    if not parallelism:
        return most
    return max(1, min(most, math.ceil(items / (TASKS_PER_WORKER * parallelism))))


#: each worker's renderers, by the token of the dataset they render (set up once per worker)
_RENDERERS: dict = {}


def _on_worker(function: Callable, shared, item, threads: int | None):
    if threads:
        import torch

        torch.set_num_threads(threads)
    return function(shared, item)


def _render_block(shared, block: range) -> list[int]:
    from nbsim.datasets.render import Renderer
    from nbsim.datasets.run import render_block

    plan, options, outputs, token = shared
    renderer = _RENDERERS.get(token)
    if renderer is None:
        _RENDERERS.clear()  # one dataset at a time per worker
        renderer = _RENDERERS[token] = Renderer(plan.config(0), options)
    return render_block(plan, outputs, block, renderer)


@attrs.define
class ScaleOut:
    """``workers`` local processes (a Dask LocalCluster), the cluster at ``scheduler``, or the
    cluster of a ``client`` the caller has (and closes)."""

    workers: int | None = None
    scheduler: str | None = None
    client: object = None
    cluster: object = None
    owns_client: bool = False

    def __enter__(self) -> ScaleOut:
        if self.client is not None:  # one client per process: Dask's event loops do not mix
            return self
        try:
            from distributed import Client, LocalCluster
        except ImportError:  # pragma: no cover - a dependency of nbsim
            raise UsageError("--workers/--scheduler need dask.distributed (pip install distributed)") from None
        if self.scheduler is not None:
            try:
                self.client = Client(self.scheduler, timeout="20s")
            except (OSError, TimeoutError) as exc:
                raise UsageError(f"--scheduler {self.scheduler}: cannot connect ({exc})") from None
        else:
            self.cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                        dashboard_address=None, silence_logs=logging.ERROR)
            self.client = Client(self.cluster)
        self.owns_client = True
        return self

    def __exit__(self, *exc) -> None:
        if self.owns_client:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()

    @property
    def parallelism(self) -> int:
        """How many tasks run at once: the local workers, or the cluster's worker threads now."""
        if self.workers:
            return self.workers
        workers = self.client.scheduler_info().get("workers", {}).values()
        return max(1, sum(w.get("nthreads", 1) for w in workers))

    def run(self, function: Callable, shared, items: list, advance: Callable, *, key: str) -> None:
        """``function(shared, item)`` for every item, one task each (retried where a worker is
        lost), ``shared`` sent to every worker once; ``advance(result)`` as each finishes."""
        from distributed import as_completed

        # local workers share the CPUs; a cluster's workers use what they were given
        threads = max(1, (os.cpu_count() or 1) // self.workers) if self.workers else None
        on_workers = self.client.scatter(shared, broadcast=True, hash=False)
        futures = [self.client.submit(_on_worker, function, on_workers, item, threads, key=f"{key}-{i}", retries=2)
                   for i, item in enumerate(items)]
        try:
            for future in as_completed(futures):
                advance(future.result())
        finally:
            for future in futures:
                future.cancel()

    def render(self, plan, options, outputs, pending: list[range], advance: Callable[[list[int]], None]) -> None:
        """Render a dataset's ``pending`` blocks; ``advance(images)`` as each finishes."""
        remote = attrs.evolve(outputs, **{name: os.path.abspath(getattr(outputs, name))
                                          for name in ("template", "nexus") if getattr(outputs, name)})
        token = hashlib.sha256(pickle.dumps((plan, options, remote))).hexdigest()[:16]
        self.run(_render_block, (plan, options, remote, token), pending, advance, key=f"nbsim-{token}")
