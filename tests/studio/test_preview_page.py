"""The preview page in a real headless Chromium: cards, live problems, the paste box."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from playwright.async_api import expect
from studio_support import SHIPPED, ServePreview, edit

from consumer.mapping import load_mappings
from consumer.settings import MappingSettings
from consumer.studio.phone import lock_screens

ORDER_TOTAL = "{{ order.total | money }}.{% endif %}\n      Сообщим"


async def test_every_shipped_rule_is_shown_with_its_examples_as_ios_and_android_cards(
    serve_preview: ServePreview, page: Any
) -> None:
    rules = load_mappings(SHIPPED, MappingSettings()).rules
    async with serve_preview(SHIPPED) as (url, _):
        await page.goto(url)
        await page.wait_for_selector(".rule")
        assert await page.locator("#status").inner_text() == f"✓ check passes · {len(rules)} rules"
        assert await page.locator("#problems").is_hidden()
        for rule in rules:
            section = page.locator(f'.rule[data-rule="{rule.id}"]')
            assert await section.locator(".where").first.inner_text() == rule.where
            examples = section.locator(".example")
            assert await examples.count() == len(rule.examples), rule.id
            for platform in ("ios", "android"):
                phones = section.locator(f'.variant[data-variant="personal"] .phone.{platform}')
                assert await phones.count() == len(rule.examples), (rule.id, platform)


async def test_a_card_shows_the_lines_a_lock_screen_shows(
    mappings: Path, serve_preview: ServePreview, page: Any
) -> None:
    async with serve_preview(mappings) as (url, _):
        await page.goto(url)
        created = page.locator('.rule[data-rule="order_created"] .example').first
        ios = created.locator(".phone.ios > .notification")
        assert await ios.locator(".title").inner_text() == "Заказ №10452 оформлен"
        assert await ios.locator(".line").all_inner_texts() == [
            "Спасибо за покупку! Сумма заказа —",
            "4\xa0990\xa0₽. Сообщим, когда заказ",
            "подтвердят.",
        ]
        android = created.locator(".phone.android > .notification")
        assert await android.locator(".line").all_inner_texts() == [
            "Спасибо за покупку! Сумма заказа — 4\xa0990\xa0₽. Сооб…"
        ]
        assert "cut" in await created.locator(".phone.android > .caption").inner_text()


async def test_a_broken_file_shows_its_problem_inline_and_the_fix_clears_it(
    mappings: Path, serve_preview: ServePreview, page: Any
) -> None:
    orders = mappings / "orders.yaml"
    async with serve_preview(mappings) as (url, _):
        await page.goto(url)
        await page.wait_for_selector(".rule")
        await page.evaluate("window.sameDocument = true")  # gone if the page reloads

        line = edit(orders, ORDER_TOTAL, ORDER_TOTAL.replace("money", "mony"))
        problem = page.locator("#problem-list .problem")
        await problem.first.wait_for()
        assert await problem.count() == 1
        text = await problem.inner_text()
        # The check names the line of `summary:`, just above the edited text.
        assert text.startswith(f"{orders}:{line - 1}: the summary uses an unknown filter `mony`")
        assert text.endswith(" (order_created)")  # the rule it is in
        inline = page.locator('.rule[data-rule="order_created"] .problem')
        assert await inline.inner_text() == text.removesuffix(" (order_created)")
        assert await page.locator(".rule .problem").count() == 1  # in that rule only
        assert (await page.locator("#status").inner_text()).startswith("✗ 1 problem")

        edit(orders, ORDER_TOTAL.replace("money", "mony"), ORDER_TOTAL)
        await page.locator("#problems").wait_for(state="hidden")
        assert await page.locator(".rule .problem").count() == 0
        assert (await page.locator("#status").inner_text()).startswith("✓ check passes")
        assert await page.evaluate("window.sameDocument") is True


async def test_a_yaml_error_keeps_the_files_cards_and_says_where(
    mappings: Path, serve_preview: ServePreview, page: Any
) -> None:
    bonus = mappings / "bonus.yaml"
    async with serve_preview(mappings) as (url, _):
        await page.goto(url)
        accrued = page.locator('.rule[data-rule="bonus_accrued"]')
        await accrued.wait_for()
        line = edit(bonus, "    ttl: 1d\n    title: 'Начислили", "  ttl: 1d\n    title: 'Начислили")
        await page.locator("#problem-list .problem").first.wait_for()
        first = await page.locator("#problem-list .problem .where").first.inner_text()
        assert first.startswith(f"{bonus}:")
        assert abs(int(first.rsplit(":", 1)[1]) - line) <= 1
        assert "last version" in await accrued.locator(".note-box").inner_text()
        assert await accrued.locator(".example").count() == 2  # still shown


async def test_a_pasted_event_renders_with_the_rule_it_matches(
    mappings: Path, serve_preview: ServePreview, page: Any
) -> None:
    event = (
        '{"event_type": "order.status_changed", "order": {"id": "A-7", "number": "777",'
        ' "status": "handed_to_courier", "delivery": {"method": "courier"}}}'
    )
    async with serve_preview(mappings) as (url, _):
        await page.goto(url)
        await page.wait_for_selector(".rule")
        await page.fill("#paste", event)
        await page.click("#paste-render")
        result = page.locator("#paste-result")
        await result.locator(".phone.ios").wait_for()
        assert "order_with_courier" in await result.locator("p").first.inner_text()
        assert "filled in: event_id, occurred_at, recipient" in await result.inner_text()
        ios = result.locator(".phone.ios > .notification")
        assert await ios.locator(".title").inner_text() == "Курьер везёт заказ №777"

        await page.fill("#paste", '{"event_type": "order.status_changed", "order": {"id": 1}}')
        await page.click("#paste-render")
        await result.locator(".error-box").wait_for()
        assert "order.status" in await result.locator(".error-box").inner_text()


async def test_template_output_is_shown_as_text_never_as_html(
    tmp_path: Path, serve_preview: ServePreview, page: Any
) -> None:
    rules = tmp_path / "mappings"
    rules.mkdir()
    (rules / "rules.yaml").write_text(
        """\
rules:
  - id: echo
    event: order.status_changed
    class: transactional
    ttl: 1h
    title: "Заказ {{ order.number }}"
    summary: "{{ order.id }}"
    examples:
      - event:
          order: {id: "<b>bold</b>", number: "<img src=x onerror=hacked=1>", status: x}
        push:
          title: Заказ <img src=x onerror=hacked=1>
          summary: <b>bold</b>
""",
        encoding="utf-8",
    )
    async with serve_preview(rules) as (url, _):
        await page.goto(url)
        card = page.locator('.rule[data-rule="echo"] .phone.ios > .notification')
        await card.wait_for()
        assert await card.locator(".title").inner_text() == ("Заказ <img src=x onerror=hacked=1>")
        assert await card.locator(".line").inner_text() == "<b>bold</b>"
        assert await page.locator("img").count() == 0
        assert await page.locator("b", has_text="bold").count() == 0
        await page.fill(
            "#paste",
            '{"event_type": "order.status_changed", "order": {"id": "<script>window.hacked=2'
            '</script>", "number": "<img src=y onerror=window.hacked=3>", "status": "x"}}',
        )
        await page.click("#paste-render")
        await page.locator("#paste-result .phone.ios").wait_for()
        assert await page.locator("img").count() == 0
        assert await page.locator("#paste-result script").count() == 0
        assert await page.evaluate("window.hacked") is None


async def test_a_save_announced_while_the_page_is_still_loading_is_not_lost(
    mappings: Path, serve_preview: ServePreview, page: Any
) -> None:
    # The page fetches version 2 of the model; while that answer is on its way the
    # file is saved again (version 3 announced). The page must end on version 3.
    orders = mappings / "orders.yaml"
    async with serve_preview(mappings) as (url, preview):
        await page.goto(url)
        await expect(page.locator("body")).to_have_attribute("data-version", "1")
        fetched, release = asyncio.Event(), asyncio.Event()
        held: list[Any] = []

        async def hold_the_first(route: Any) -> None:
            if held:
                await route.continue_()
                return
            held.append(await route.fetch())  # version 2, as the server has it now
            fetched.set()
            await release.wait()
            await route.fulfill(response=held[0])

        await page.route("**/api/model", hold_the_first)
        edit(orders, "}} оформлен", "}} принят")
        await asyncio.wait_for(fetched.wait(), 10)
        edit(orders, "}} принят", "}} создан")
        async with asyncio.timeout(10):
            while preview.version < 3:
                await preview.changed.wait()
        release.set()
        await expect(page.locator("body")).to_have_attribute("data-version", "3")
        title = page.locator('.rule[data-rule="order_created"] .phone.ios .title').first
        await expect(title).to_have_text("Заказ №10452 создан")


async def test_a_shared_variant_stands_beside_the_personal_one(
    mappings: Path, serve_preview: ServePreview, page: Any
) -> None:
    # Rules cannot declare `shared:` or quiet hours yet (outcome.variants and
    # quiet_hours read them once they can): the page is given a model as the
    # server will build it then, to show that it lays the second variant out.
    async with serve_preview(mappings) as (url, preview):
        model = json.loads(preview.model)
        rule = next(r for r in model["rules"] if r["id"] == "order_created")
        rule["quiet_hours"] = "22:00–09:00"
        rule["variants"].append(
            {"name": "shared", "cost": {"tier": "shared", "text": "shared text"}}
        )
        example = rule["examples"][0]
        personal = example["variants"][0]
        shared_title, shared_summary = "Ваш заказ оформлен", "Подробности — в уведомлениях."
        example["variants"].append(
            {
                **personal,
                "name": "shared",
                "title": shared_title,
                "summary": shared_summary,
                "screens": lock_screens(shared_title, shared_summary),
            }
        )
        body = json.dumps(model, ensure_ascii=False)
        await page.route("**/api/model", lambda route: route.fulfill(body=body))
        await page.goto(url)
        section = page.locator('.rule[data-rule="order_created"]')
        await section.wait_for()
        first = section.locator(".example").first
        assert await first.locator(".variant h4").all_inner_texts() == [
            "PERSONAL TEXT",
            "SHARED TEXT",
        ]
        shared = first.locator('.variant[data-variant="shared"]')
        assert await shared.locator(".phone.ios > .notification .title").inner_text() == (
            shared_title
        )
        assert await shared.locator(".phone.android > .notification .line").inner_text() == (
            shared_summary
        )
        assert "quiet hours 22:00–09:00" in await section.locator(".facts").inner_text()
        costs = await section.locator(".cost").all_inner_texts()
        assert [c.split(":")[0] for c in costs] == ["personal", "shared"]
