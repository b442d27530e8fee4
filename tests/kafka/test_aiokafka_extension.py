"""aiokafka must run with its C extension: the pure-Python fallback is silent and slow."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from aiokafka.record.default_records import DefaultRecordBatch

from consumer.errors import FatalError
from consumer.kafka.clients import aiokafka_c_extension_problem, assert_aiokafka_c_extension

_PROBE = "from consumer.kafka.clients import aiokafka_c_extension_problem as p; print(p())"


def test_aiokafka_record_code_is_the_c_extension() -> None:
    assert os.environ.get("AIOKAFKA_NO_EXTENSIONS") is None, (
        "AIOKAFKA_NO_EXTENSIONS is set in the test environment: aiokafka runs in pure Python"
    )
    assert DefaultRecordBatch.__module__ == "aiokafka.record._crecords.default_records"
    assert aiokafka_c_extension_problem() is None
    assert_aiokafka_c_extension()


def test_the_check_reports_the_pure_python_fallback() -> None:
    # A fresh interpreter: aiokafka picks its implementation once, at import.
    env = {**os.environ, "AIOKAFKA_NO_EXTENSIONS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=60
    )

    assert done.returncode == 0, done.stderr
    assert "AIOKAFKA_NO_EXTENSIONS='1' is set" in done.stdout


def test_assert_raises_a_fatal_error_naming_the_cause(monkeypatch: pytest.MonkeyPatch) -> None:
    import aiokafka.util

    monkeypatch.setattr(aiokafka.util, "NO_EXTENSIONS", True)
    monkeypatch.setenv("AIOKAFKA_NO_EXTENSIONS", "yes")

    with pytest.raises(FatalError, match="AIOKAFKA_NO_EXTENSIONS='yes'"):
        assert_aiokafka_c_extension()
