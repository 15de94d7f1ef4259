"""Extraction on a Ray cluster: the shards still to encode become Ray actor tasks.

Each actor holds one loaded encoder (one actor per GPU with `num_gpus=1`, or per group of CPU
cores) and runs `ShardJob.run(k)`: decode and encode shard k, write part-0000k.parquet atomically
with the extraction's fingerprint. The driver decides which shards are missing or stale (the same
`shard_status` check as a local run), hands them out, and writes the manifest last, so a table is
complete only when every shard is. A worker that dies mid-shard leaves at most a temp file (never
a shard under its final name); Ray restarts the actor and runs the shard again
(`max_restarts`, `max_task_retries`). Every shard is a pure function of (dataset, encoder, plan, k),
so the table is byte-identical to a local run's, in any order, on any worker.

The dataset's files and the output folder must be reachable under the same paths from every node
(a shared filesystem) on a multi-node cluster; on one machine they are. Ray is imported only here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from embridge.errors import ConfigError, EmbridgeError

MAX_RESTARTS = 3  # a dead actor is restarted this often (its pending shard is retried on the new one)


class ShardActor:
    """One encoder, loaded once (on the first shard), encoding shards on request (the Ray actor's class)."""

    def __init__(self, out_dir: str, decode_workers: int, cwd: str | None = None):
        if cwd and os.path.isdir(cwd):  # relative dataset paths mean the same files as on the driver
            os.chdir(cwd)
        self.out_dir, self.decode_workers, self.job = out_dir, decode_workers, None

    def run(self, k: int, inputs: list):
        """Encode shard k. inputs: [refs of (dataset, encoder, plan)], fetched on the first call: the
        driver holds them for the whole run, so a restarted actor (a retried shard) finds them."""
        if self.job is None:
            import ray
            from embridge.encoders.shards import ShardJob

            dataset, encoder, plan, expect = ray.get(inputs[0])
            encoder.load()
            check_same_encoder(encoder, expect)
            self.job = ShardJob(dataset, encoder, plan, self.out_dir, workers=self.decode_workers)
        return k, self.job.run(k)


def check_same_encoder(encoder, expect: dict | None) -> None:
    """The encoder loaded here must have the settings the driver fingerprinted (its config, with
    what `device: auto` resolved to, and its package versions): else this node would write other
    bytes under the driver's fingerprint."""
    if not expect:
        return
    import json
    import socket

    got = {"encoder_config": encoder.config(), "versions": encoder.versions()}
    norm = lambda d: json.loads(json.dumps(d, sort_keys=True, default=str))  # noqa: E731
    got, expect = norm(got), norm(expect)
    diff = [f"{part}.{key}: {got[part].get(key)!r} here, {expect[part].get(key)!r} on the driver"
            for part in expect for key in sorted(set(got[part]) | set(expect[part]))
            if got[part].get(key) != expect[part].get(key)]
    if diff:
        raise ConfigError(f"ray: the encoder on worker node {socket.gethostname()} differs from the driver's ({'; '.join(diff)}); "
                          "give every node the same packages and set extract.device explicitly (not auto)")


def actor_options(cpus: int, gpus: int, workers: int) -> tuple[int, dict]:
    """(number of actors, options of each): one per GPU when the cluster has GPUs, else `workers`
    actors (0: one per CPU) sharing the CPUs. Never more actors than the cluster can hold at once:
    an actor that cannot be placed would keep the shards handed to it waiting forever."""
    cpus = max(1, cpus)
    if gpus:
        n = min(workers or gpus, gpus)
        return n, {"num_gpus": 1, "num_cpus": max(1, cpus // n) if cpus >= n else 0}
    n = min(workers or cpus, cpus)
    return n, {"num_cpus": max(1, cpus // n)}


def run_shards(dataset, encoder, plan, out_dir: str | Path, todo: Iterable[int], address: str | None = None,
               workers: int = 0, decode_workers: int = 2,
               on_shard: Callable[[int, tuple], None] | None = None,
               log: Callable[[str], None] | None = None, expect: dict | None = None) -> dict[int, tuple]:
    """Encode shards `todo` on Ray actors. `encoder` is an unloaded Encoder (each actor loads its own
    copy). address: None starts a local Ray instance (shut down afterwards), "auto" or host:port joins
    a running cluster; a process where Ray is already initialized uses that one. Returns
    {k: (rows written, skipped rows)}; on_shard(k, result) as each ends. expect: the driver's
    {"encoder_config", "versions"} of the encoder, checked on every actor (check_same_encoder)."""
    from embridge.evaluation.distributed import connect

    todo = list(todo)
    if not todo:
        return {}
    ray, started = connect(address, num_cpus=os.cpu_count())
    actors = []
    try:
        res = ray.cluster_resources()
        n, opts = actor_options(int(res.get("CPU", 1)), int(res.get("GPU", 0)), workers)
        n = min(n, len(todo))
        if log:
            where = "a new local Ray instance" if started else f"the Ray cluster at {address or 'this process'}"
            log(f"{len(todo)} shard(s) to encode on {n} Ray actor(s) of {opts} ({where})")
        Actor = ray.remote(max_restarts=MAX_RESTARTS, max_task_retries=MAX_RESTARTS, **opts)(ShardActor)
        refs = [ray.put(x) for x in (dataset, encoder, plan, expect)]
        actors = [Actor.remote(str(out_dir), decode_workers, os.getcwd()) for _ in range(n)]
        from ray.util import ActorPool

        pool = ActorPool(actors)
        results = {}
        for k, result in pool.map_unordered(lambda a, k: a.run.remote(k, [refs]), todo):
            results[k] = result
            if on_shard:
                on_shard(k, result)
        return results
    except ray.exceptions.RayTaskError as exc:  # the shard's own error (bad file, NaN output): as a local run says it
        cause = getattr(exc, "cause", None)
        if isinstance(cause, Exception):
            raise cause from None
        raise
    except ray.exceptions.RayActorError as exc:
        raise EmbridgeError(f"ray: an encoder actor died {MAX_RESTARTS + 1} times (out of memory, or killed); "
                            f"the shards written so far are kept, rerun to resume ({str(exc).splitlines()[0]})") from None
    finally:
        for a in actors:
            ray.kill(a)
        if started:
            ray.shutdown()
