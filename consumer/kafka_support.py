"""Checks on the Kafka client library that the service makes at start.

aiokafka parses and builds record batches in a Cython extension. When the
extension is missing (no wheel for the platform, or ``AIOKAFKA_NO_EXTENSIONS``
set) it silently falls back to pure Python, which costs several times the CPU per
record: the service says so instead of just being slow.
"""

from __future__ import annotations

import os

import aiokafka.util
from aiokafka.record import default_records, legacy_records, memory_records, util

from consumer.errors import FatalError

_C_PACKAGE = "aiokafka.record._crecords"


def aiokafka_c_extension_problem() -> str | None:
    """Why aiokafka runs without its C extension, or None when it uses it."""
    if aiokafka.util.NO_EXTENSIONS:
        value = os.environ.get("AIOKAFKA_NO_EXTENSIONS", "")
        return (
            f"AIOKAFKA_NO_EXTENSIONS={value!r} is set, so aiokafka uses its pure-Python "
            "record code; unset it"
        )
    implementations = {
        "DefaultRecordBatch": default_records.DefaultRecordBatch,
        "DefaultRecordBatchBuilder": default_records.DefaultRecordBatchBuilder,
        "LegacyRecordBatch": legacy_records.LegacyRecordBatch,
        "MemoryRecords": memory_records.MemoryRecords,
        "calc_crc32c": util.calc_crc32c,
    }
    pure = [name for name, impl in implementations.items() if _C_PACKAGE not in impl.__module__]
    if pure:
        return (
            f"aiokafka's C extension ({_C_PACKAGE}) did not load, so these run in pure "
            f"Python: {', '.join(pure)}; install an aiokafka wheel built for this platform"
        )
    return None


def assert_aiokafka_c_extension() -> None:
    """Raise FatalError when aiokafka would run without its C extension."""
    problem = aiokafka_c_extension_problem()
    if problem is not None:
        raise FatalError(problem)
