"""Hot reload: good edits swap in whole, broken ones are rejected and the last good set stays."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from mapping_helpers import event, rule_yaml, write
from structlog.testing import capture_logs

from consumer.clock import FakeClock
from consumer.mapping import MappingReloader
from consumer.metrics import Metrics
from consumer.settings import MappingSettings

ORDER = {"id": "A-1", "number": "77", "status": "handed_to_courier"}


def _touch_later(path: Path) -> None:
    # mtime resolution can be coarse: move it forward so the change is visible
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def _title(reloader: MappingReloader) -> str:
    push = reloader.current.render(event(order=ORDER))
    assert push is not None
    return push.message.title


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, MappingReloader, Metrics, FakeClock]:
    write(tmp_path, "orders.yaml", rule_yaml())
    metrics, clock = Metrics(), FakeClock()
    reloader = MappingReloader(tmp_path, MappingSettings(reload_interval_s=2), metrics, clock)
    return tmp_path, reloader, metrics, clock


def test_a_good_edit_is_loaded(setup: tuple[Path, MappingReloader, Metrics, FakeClock]) -> None:
    directory, reloader, metrics, _ = setup
    assert _title(reloader) == "Заказ №77 отправлен"
    edited = rule_yaml(
        title="'Заказ №{{ order.number | default: order.id }} в пути'",
        expected_title="Заказ №77 в пути",
    )
    _touch_later(write(directory, "orders.yaml", edited))
    assert reloader.poll() is True
    assert _title(reloader) == "Заказ №77 в пути"
    assert metrics.value("mapping_reloads_total", result="loaded") == 1


def test_a_broken_edit_keeps_the_last_good_set(
    setup: tuple[Path, MappingReloader, Metrics, FakeClock],
) -> None:
    directory, reloader, metrics, _ = setup
    good = reloader.current
    _touch_later(write(directory, "orders.yaml", rule_yaml(title="'{{ order.numbr }}'")))
    with capture_logs() as logged:
        assert reloader.poll() is False
    assert reloader.current is good
    assert _title(reloader) == "Заказ №77 отправлен"
    assert metrics.value("mapping_reloads_total", result="rejected") == 1
    [entry] = [e for e in logged if e["event"] == "mappings_rejected"]
    assert entry["log_level"] == "error"
    assert any("`order.numbr`" in problem for problem in entry["problems"])
    # the same broken content is not reported again on every poll
    _touch_later(directory / "orders.yaml")
    assert reloader.poll() is False
    assert metrics.value("mapping_reloads_total", result="rejected") == 1


def test_an_unchanged_directory_is_not_reloaded(
    setup: tuple[Path, MappingReloader, Metrics, FakeClock],
) -> None:
    directory, reloader, metrics, _ = setup
    first = reloader.current
    assert reloader.poll() is False
    _touch_later(directory / "orders.yaml")  # same content, newer time
    assert reloader.poll() is False
    assert reloader.current is first
    assert metrics.value("mapping_reloads_total", result="loaded") == 0


def test_a_new_broken_file_rejects_the_whole_set(
    setup: tuple[Path, MappingReloader, Metrics, FakeClock],
) -> None:
    directory, reloader, metrics, _ = setup
    write(directory, "bonus.yaml", "rules:\n  - id: [\n")
    assert reloader.poll() is False
    assert [r.rule_id for r in reloader.current.rules] == ["orders.yaml:order_shipped"]
    assert metrics.value("mapping_reloads_total", result="rejected") == 1


async def test_run_polls_on_the_clock(
    setup: tuple[Path, MappingReloader, Metrics, FakeClock],
) -> None:
    directory, reloader, metrics, clock = setup
    task = asyncio.create_task(reloader.run())
    try:
        await clock.advance(0)
        edited = rule_yaml(
            title="'Заказ №{{ order.number | default: order.id }} едет'",
            expected_title="Заказ №77 едет",
        )
        _touch_later(write(directory, "orders.yaml", edited))
        await clock.advance(1.9)
        assert _title(reloader) == "Заказ №77 отправлен"  # not yet: the interval is 2 s
        await clock.advance(0.2)
        assert _title(reloader) == "Заказ №77 едет"
        assert metrics.value("mapping_reloads_total", result="loaded") == 1
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
