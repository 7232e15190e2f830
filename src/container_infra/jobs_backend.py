"""What the Swarm and Kubernetes job backends share: the checks before a submit and the wait."""

from __future__ import annotations

import time
from collections.abc import Callable

from container_infra import jobs
from container_infra.registry_check import image_error


class JobsBackend:
    """A cluster's jobs; a backend gives ``nodes``, ``list`` and ``status``."""

    def nodes(self) -> list[jobs.Node]:
        raise NotImplementedError

    def list(self) -> list[dict]:
        raise NotImplementedError

    def status(self, name: str) -> dict:
        raise NotImplementedError

    def check(self, job: jobs.Job, storage_spec: list[dict] | None = None, cluster: str = "",
              registry_ca: str | None = None, check_image: bool = True) -> list[str]:
        """Every reason the job cannot run here, one sentence each (nothing is submitted)."""
        nodes = self.nodes()
        if storage_spec is not None:
            jobs.node_mounts(nodes, storage_spec, cluster)
        running = {s["name"] for s in self.list() if not s["finished"]}
        errors = jobs.placement_errors(job, nodes, running, mounts_known=storage_spec is not None)
        if check_image:
            missing = image_error(job.image, registry_ca)
            if missing:
                errors.append(missing)
        return errors

    def wait(self, name: str, interval: float = 2, timeout: float | None = None,
             progress: Callable[[dict], None] | None = None) -> dict:
        """Poll until the job is finished (or past its deadline, which cancels it); ``progress`` sees each poll."""
        started = time.monotonic()
        while True:
            summary = self.status(name)
            if progress:
                progress(summary)
            if summary["finished"]:
                return summary
            if timeout is not None and time.monotonic() - started > timeout:
                return summary
            time.sleep(interval)
