"""The demo end to end on the session broker: it ends by itself and accounts for everything."""

from __future__ import annotations

import asyncio
import io
import re
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from consumer.app import Service
from consumer.errors import FatalError, SettingsError
from consumer.local.demo import DemoOptions, _watch, run_demo
from consumer.local.demo_history import busiest_customer, print_history
from consumer.local.simulators.imshop import PushPrinter, mask
from consumer.settings import load_settings

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]


async def test_demo_ends_by_itself_with_every_event_accounted_for(
    kafka_bootstrap: str, kafka_admin: AIOKafkaAdminClient, unique_name: Callable[[str], str]
) -> None:
    prefix = unique_name("demo")
    out = io.StringIO()
    options = DemoOptions(
        events=60,
        campaign=40,
        window_s=1.0,
        max_seconds=60,
        bootstrap_servers=kafka_bootstrap,
        topics_prefix=prefix,
    )

    summary = await run_demo(options, out)

    text = out.getvalue()
    assert summary.produced == 60 + 40 + 2 + options.rush + 3  # the rush, the trickle after
    assert summary.accounted == summary.produced, summary.outcomes
    assert summary.outcomes["dead_lettered"] == 2
    assert summary.dead_letters == 2
    assert summary.violations == 0
    assert summary.clean
    assert summary.requests < summary.outcomes["sent"], "the campaign was coalesced"
    assert summary.max_in_window <= options.rate_limit
    assert "request 1 " in text
    assert f"request {summary.requests} " in text, "every request was shown"
    assert "Budget scaled 60x" in text
    assert "violations: 0" in text
    assert "result:             OK" in text
    assert "Notification history of customer 7999***" in text
    # The rush: some customers told personally, the rest with the shared text at once;
    # the orders after it personal again.
    assert "A rush: 60 orders handed to the courier at once." in text
    assert "[shared text] Ваш заказ передан курьеру — Курьер позвонит" in text
    rush = " ".join(text.split("What the rush showed\n", 1)[1].split())
    told = re.search(r"(\d+) customers got their own text .* and (\d+) the rule's shared one", rush)
    assert told is not None, rush
    personal, shared = int(told.group(1)), int(told.group(2))
    assert (personal + shared, personal > 0, shared > 0) == (60, True, True)
    assert "Then 3 orders a few seconds apart: 3 of them personal again." in rush
    assert re.search(r"POST /imshop/history, [1-9]\d* items, newest first", text)
    assert not [t for t in await kafka_admin.list_topics() if t.startswith(prefix)], (
        "the demo deletes its topics"
    )


async def test_demo_explains_its_figures_and_names_the_dead_letters_it_read_back(
    kafka_bootstrap: str, unique_name: Callable[[str], str]
) -> None:
    out = io.StringIO()
    options = DemoOptions(
        events=30,
        campaign=20,
        window_s=1.0,
        quiet=True,
        bootstrap_servers=kafka_bootstrap,
        topics_prefix=unique_name("demo"),
    )

    summary = await run_demo(options, out)

    legend = out.getvalue().split("What the figures mean\n", 1)[1]
    for outcome, count in summary.outcomes.items():
        assert f"  {outcome} {count}: " in legend, outcome
    assert f"recipients {summary.recipients} in {summary.requests} requests: " in legend
    assert f"the largest {summary.max_recipients} (the bonus campaign" in legend
    assert "result OK: every published event has exactly one outcome" in legend
    # Read back from the dead-letter topic: the reasons and messages are the service's own.
    assert sorted((d.reason, d.dlq.get("event_id")) for d in summary.dead_lettered) == [
        ("invalid_json", None),
        ("schema_violation", "broken-2"),
    ]
    assert "  invalid_json (key A-broken): the record is not JSON: " in legend
    assert "  schema_violation (broken-2): recipient: missing" in legend


async def test_interrupting_the_demo_says_what_it_cleaned_up(
    kafka_bootstrap: str, kafka_admin: AIOKafkaAdminClient, unique_name: Callable[[str], str]
) -> None:
    prefix = unique_name("demo")
    out = io.StringIO()
    # One request a minute: the run is still going when it is interrupted.
    options = DemoOptions(
        events=30,
        campaign=0,
        window_s=60.0,
        rate_limit=1,
        bootstrap_servers=kafka_bootstrap,
        topics_prefix=prefix,
    )
    demo = asyncio.create_task(run_demo(options, out))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while "The service is running" not in out.getvalue():
        assert not demo.done(), out.getvalue()
        assert loop.time() < deadline, "the service did not start within 60 s"
        await asyncio.sleep(0.1)

    demo.cancel()  # what Ctrl-C does to asyncio.run's task
    with pytest.raises(asyncio.CancelledError):
        await demo

    said = out.getvalue().split("Interrupted. Cleaned up:\n", 1)[1].splitlines()
    assert said[0] == "  - stopped the service (what it had finished is committed in Kafka)"
    assert said[1] == "  - stopped the IMSHOP simulator"
    assert said[2].startswith(f"  - deleted the topics {prefix}-"), said
    assert len(said) == 3, "no local broker was started, so none is reported stopped"
    assert not [t for t in await kafka_admin.list_topics() if t.startswith(prefix)]


async def test_demo_stops_at_its_time_limit_and_says_so(
    kafka_bootstrap: str, unique_name: Callable[[str], str]
) -> None:
    out = io.StringIO()
    # One request per minute: most pushes cannot go out before the limit.
    options = DemoOptions(
        events=40,
        campaign=0,
        window_s=60.0,
        rate_limit=1,
        max_seconds=2.0,
        quiet=True,
        bootstrap_servers=kafka_bootstrap,
        topics_prefix=unique_name("demo"),
    )

    summary = await run_demo(options, out)

    text = out.getvalue()
    assert not summary.clean
    assert summary.accounted < summary.produced
    assert summary.violations == 0
    assert "Stopping: the 2 s limit was reached." in text
    assert "result:             INCOMPLETE" in text
    assert "request 1 " not in text, "--quiet shows no pushes"


def test_user_ids_are_masked_but_distinguishable() -> None:
    assert mask("79990001122") == "7999***1122"
    assert mask("1234") == "1234"


async def test_an_unreachable_broker_ends_the_demo_with_one_clear_error() -> None:
    options = DemoOptions(bootstrap_servers="127.0.0.1:1", quiet=True)

    with pytest.raises(FatalError, match=r"^cannot reach Kafka at 127\.0\.0\.1:1: "):
        await run_demo(options, io.StringIO())


async def test_a_malformed_broker_address_ends_the_demo_before_anything_starts() -> None:
    options = DemoOptions(bootstrap_servers="host:abc", quiet=True)
    out = io.StringIO()

    with pytest.raises(SettingsError, match=r"^invalid setting KAFKA_BOOTSTRAP_SERVERS='host:abc'"):
        await run_demo(options, out)

    assert out.getvalue() == ""


async def test_a_service_that_dies_mid_run_ends_the_watch_at_once() -> None:
    async def dies() -> None:
        await asyncio.sleep(0.05)
        raise FatalError("the consume loop broke")

    running = asyncio.create_task(dies())
    simulator: Any = SimpleNamespace(pushes=[], config=SimpleNamespace(rate_limit=10))
    printer = PushPrinter(simulator, io.StringIO(), window_s=1.0, quiet=True)
    service = Service(load_settings())

    with pytest.raises(FatalError, match="the consume loop broke"):
        # Far from the deadline: without the race it would poll on and return False.
        await _watch(service, running, printer, expected=5, deadline=time.monotonic() + 30)


def test_the_history_shown_is_the_customer_with_most_order_news() -> None:
    values = [
        b'{"event_type": "order.status_changed", "recipient": {"user_id": "79990000001"}}',
        b'{"event_type": "bonus.accrued", "recipient": {"user_id": "79990000002"}}',
        b'{"event_type": "bonus.accrued", "recipient": {"user_id": "79990000002"}}',
        b'{"event_type": "order.status_changed", "recipient": {"user_id": "79990000003"}}',
        b'{"event_type": "order.status_changed", "recipient": {"user_id": "79990000003"}}',
        b'{"event_id": "broken-1", "event_type": "or',
    ]

    assert busiest_customer(values) == "79990000003"
    assert busiest_customer([b"not json"]) is None


def test_the_history_prints_newest_first_with_text_link_and_first_news() -> None:
    out = io.StringIO()
    items = [
        {
            "id": "2",
            "title": "Заказ №7 доставлен",
            "createdOn": 1_000,
            "updatedOn": 61_000,
            "text": "Спасибо!",
            "deepLink": "imshop://orders/7",
        },
        {"id": "1", "title": "Начислили 5 бонусов", "createdOn": 500, "updatedOn": 500},
    ]

    print_history("79990001122", items, out)

    lines = out.getvalue().splitlines()
    assert "customer 7999***1122" in lines[1]
    assert "2 items, newest first" in lines[2]
    assert lines[3].split("  ", 2)[2].startswith("Заказ №7 доставлен   (first news ")
    assert lines[4].strip() == "Спасибо!"
    assert lines[5].strip() == "-> imshop://orders/7"
    assert lines[6].endswith("Начислили 5 бонусов")
