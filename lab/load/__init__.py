"""Host-side TCP echo load: stream, connect and ping modes with byte-exact verification.

    from lab.load import LoadSpec, Target, run_load
    result = run_load(LoadSpec(targets=(Target("127.0.0.1", 5000),), duration=2))
    assert result.ok, result.errors

Independent of the VMs; ``lab load HOST:PORT`` is the command-line face.
"""

from lab.load.engine import run_load, run_load_async
from lab.load.result import (
    ConnError,
    ConnStats,
    DataFault,
    ErrorClass,
    Interval,
    Latency,
    LoadConfigError,
    LoadResult,
    LoadSpec,
    Mode,
    Target,
    TargetSummary,
)

__all__ = [
    "ConnError",
    "ConnStats",
    "DataFault",
    "ErrorClass",
    "Interval",
    "Latency",
    "LoadConfigError",
    "LoadResult",
    "LoadSpec",
    "Mode",
    "Target",
    "TargetSummary",
    "run_load",
    "run_load_async",
]
