"""poolbench's core: the pool store, data model, runner, backends and the CLI (composition root)."""

from harness.pool import Pool
from harness.schema import PoolError

__all__ = ["Pool", "PoolError"]
