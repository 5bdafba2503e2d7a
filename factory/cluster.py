"""Connecting to Ray for `--engine ray`: an existing cluster, or a local instance for this run.

`--ray-address ADDRESS` (or the `RAY_ADDRESS` environment variable) joins a running cluster
(`ray start --head` on one node, `ray start --address HEAD:6379` on the others). Without either,
a local Ray instance is started for the run and stopped at its end. A cluster that uses Ray's
token authentication (Ray 2.60's `ray start --head` turns it on when ~/.ray/auth_token exists,
and a local instance creates that file) takes a client only with `RAY_AUTH_MODE=token` and its
token in RAY_AUTH_TOKEN or ~/.ray/auth_token: Ray sends no token to an explicit address unasked.
Every node needs this package installed at the same version (`pip install
'distill-factory[ray,gpu]'`): Ray workers import `factory` and `filters` from their own Python
environment, and API teachers' workers read FACTORY_API_KEY from the environment their node's
`ray start` ran in (the key is never sent through Ray).
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from typing import Any, Iterator

from factory.errors import FactoryError

log = logging.getLogger(__name__)

ENGINES = ("local", "ray")


def import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise FactoryError("--engine ray needs Ray, which is not installed", field="--engine",
                           hint="pip install 'distill-factory[ray]', or use --engine local"
                           ) from exc
    return ray


@contextmanager
def _quiet(name: str) -> Iterator[None]:
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def check_engine(engine: str) -> str:
    if engine not in ENGINES:
        raise FactoryError(f"unknown engine {engine!r}", field="--engine",
                           hint="use local (this process) or ray (a Ray cluster)")
    return engine


def describe_address(address: str | None) -> str:
    """Where the run's Ray work goes, for logs and the manifest (no credentials in it)."""
    address = address or os.environ.get("RAY_ADDRESS")
    if not address:
        return "local instance"
    # `ray://user:token@host:10001` style addresses: keep the scheme and host only.
    scheme, sep, rest = address.rpartition("://")
    host = rest.rsplit("@", 1)[-1]
    return f"{scheme}{sep}{host}"


@contextmanager
def ray_session(address: str | None = None, *, num_cpus: int | None = None) -> Iterator[Any]:
    """`ray` connected for the duration of the block. A local instance started here is shut
    down at the end; a cluster that was already running is only disconnected from."""
    ray = import_ray()
    address = address or os.environ.get("RAY_ADDRESS") or None
    if ray.is_initialized():  # a caller (a test, a notebook) connected already
        yield ray
        return
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    # Ray Data's progress bars would interleave with the CLI's own progress line.
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False,
                                  configure_logging=False)
    if address:
        log.info("joining the Ray cluster at %s", describe_address(address))
        try:
            ray.init(address=address, **kwargs)
        except (ConnectionError, RuntimeError) as exc:
            where = describe_address(address)
            if "authtoken" in str(exc).lower() or "unauthenticated" in str(exc).lower():
                # Ray sends its token only when asked to: never to an address given explicitly.
                raise FactoryError(f"the Ray cluster at {where} refused this client's "
                                   "authentication token", field="--ray-address",
                                   hint="set RAY_AUTH_MODE=token and the cluster's token (in "
                                        "RAY_AUTH_TOKEN or ~/.ray/auth_token)") from exc
            token = ("" if os.environ.get("RAY_AUTH_MODE", "").lower() == "token" else
                     " (one that uses token authentication needs RAY_AUTH_MODE=token too)")
            raise FactoryError(f"cannot reach the Ray cluster at {where}",
                               field="--ray-address",
                               hint=f"start it with `ray start --head`{token}, or leave "
                                    "--ray-address and RAY_ADDRESS unset for a local "
                                    "instance") from exc
    else:
        from factory.teachers.vllm import guard_children

        # The local instance's processes (and the engines in its actors) are this process's
        # descendants: the watchdog stops them if this process is killed with SIGKILL.
        guard_children()
        log.info("starting a local Ray instance (%s CPUs)", num_cpus or "all")
        # A local instance for one run takes no connections from others; Ray's notice about
        # its token authentication would only puzzle the user.
        with _quiet("ray"):
            ray.init(num_cpus=num_cpus, **kwargs)
    try:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        # Ray Data logs every execution plan at INFO (the full logs stay under /tmp/ray).
        logging.getLogger("ray.data").setLevel(logging.ERROR)
        yield ray
    finally:
        ray.shutdown()
