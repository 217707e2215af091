"""Lambda SnapStart: what a container restored from a snapshot must redo before its first page.

A snapshot freezes memory: every container restored from it starts with the same random state, the
same cached secrets and the same (dead) connections. So, after a restore, randomness is seeded again
(retry jitter must differ between containers, or they all retry PagerDuty in lockstep), cached routing
keys are forgotten (a key rotated since the snapshot is read afresh), and the HTTP connection pool is
dropped. Before the snapshot, the paging path is imported and built (no secret is read: routing keys
load when first needed), so a restored container pages without paying for imports.

The hooks come from ``snapshot_restore_py``, which Lambda's Python runtimes provide; elsewhere (tests,
the CLI) ``install`` does nothing.
"""

from __future__ import annotations

import importlib
import logging
import os
import random
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

RuntimeGetter = Callable[[], Any]


def reseed() -> None:
    """Fresh randomness for this container (the snapshot's state is shared by every restored one)."""
    random.seed(os.urandom(32))


def after_restore(get_runtime: RuntimeGetter) -> None:
    """Redo what a snapshot made stale: randomness, cached secrets, connections."""
    reseed()
    runtime = get_runtime()
    runtime.refresh()
    logger.info("restored from a snapshot: randomness re-seeded, cached secrets and connections dropped")


def before_snapshot(get_runtime: RuntimeGetter) -> None:
    """Import and build the paging path now, so the snapshot holds it (no secret is read)."""
    get_runtime().notifications()


def install(get_runtime: RuntimeGetter, hooks: Any | None = None) -> bool:
    """Register the hooks with ``snapshot_restore_py`` when the runtime offers it; whether it did."""
    if hooks is None:
        try:
            hooks = importlib.import_module("snapshot_restore_py")
        except ImportError:
            return False
    hooks.register_before_snapshot(lambda: before_snapshot(get_runtime))
    hooks.register_after_restore(lambda: after_restore(get_runtime))
    return True
