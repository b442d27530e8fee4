"""The store on SQLite and on PostgreSQL: items, order, versions, replays, reads, pruning."""

from __future__ import annotations

import random

from history_support import T0_MS, entry

from consumer.history.store import SqlHistoryStore

ORDER = "c:order-1"


async def titles(store: SqlHistoryStore, user: str = "u1") -> list[str]:
    return [item.title for item in await store.lookup(user, limit=50, since_ms=0)]


async def test_items_come_newest_first_with_imshop_times(store: SqlHistoryStore) -> None:
    await store.write([entry("a", at_ms=T0_MS), entry("b", at_ms=T0_MS + 5, text="про бонусы")])

    found = await store.lookup("u1", limit=50, since_ms=0)

    assert [item.title for item in found] == ["title of b", "title of a"]
    newest = found[0]
    assert (newest.created_on, newest.updated_on, newest.text) == (
        T0_MS + 5,
        T0_MS + 5,
        "про бонусы",
    )
    assert newest.id.isdigit()
    assert newest.id != found[1].id


async def test_an_order_is_one_item_showing_its_latest_status_on_top(
    store: SqlHistoryStore,
) -> None:
    await store.write(
        [
            entry("created", key=ORDER, version=1, at_ms=T0_MS, title="Заказ 1 оформлен"),
            entry("bonus", at_ms=T0_MS + 10, title="Начислили бонусы"),
        ]
    )
    first_id = (await store.lookup("u1", limit=50, since_ms=0))[1].id
    await store.write(
        [entry("shipped", key=ORDER, version=3, at_ms=T0_MS + 20, title="Заказ 1 отправлен")]
    )

    found = await store.lookup("u1", limit=50, since_ms=0)

    assert [item.title for item in found] == ["Заказ 1 отправлен", "Начислили бонусы"]
    order = found[0]
    assert order.id == first_id, "an order keeps its id as its status changes"
    assert (order.created_on, order.updated_on) == (T0_MS, T0_MS + 20)


async def test_an_older_order_version_never_overwrites_a_newer_one(store: SqlHistoryStore) -> None:
    await store.write([entry("v3", key=ORDER, version=3, at_ms=T0_MS + 30, title="v3")])
    # v2 arrives late, and claims a later time too: the version decides.
    await store.write([entry("v2", key=ORDER, version=2, at_ms=T0_MS + 90, title="v2")])

    (order,) = await store.lookup("u1", limit=50, since_ms=0)

    assert (order.title, order.updated_on) == ("v3", T0_MS + 30)


async def test_a_late_first_event_moves_created_on_back_but_not_the_content(
    store: SqlHistoryStore,
) -> None:
    await store.write([entry("v2", key=ORDER, version=2, at_ms=T0_MS + 50, title="v2")])
    await store.write([entry("v1", key=ORDER, version=1, at_ms=T0_MS, title="v1")])

    (order,) = await store.lookup("u1", limit=50, since_ms=0)

    assert (order.title, order.created_on, order.updated_on) == ("v2", T0_MS, T0_MS + 50)


async def test_without_versions_the_later_event_wins(store: SqlHistoryStore) -> None:
    await store.write([entry("late", key=ORDER, at_ms=T0_MS + 9, title="late")])
    await store.write([entry("early", key=ORDER, at_ms=T0_MS + 1, title="early")])

    assert await titles(store) == ["late"]


async def test_replays_and_redeliveries_change_nothing(store: SqlHistoryStore) -> None:
    batch = [
        entry("created", key=ORDER, version=1, at_ms=T0_MS),
        entry("shipped", key=ORDER, version=2, at_ms=T0_MS + 5),
        entry("bonus", at_ms=T0_MS + 7),
    ]
    await store.write(batch)
    before = await store.lookup("u1", limit=50, since_ms=0)
    await store.mark_read("u1", [before[0].id], at_ms=T0_MS + 100)
    before = await store.lookup("u1", limit=50, since_ms=0)

    await store.write(batch)
    await store.write(list(reversed(batch)))
    await store.write([batch[0]])

    assert await store.lookup("u1", limit=50, since_ms=0) == before


async def test_the_result_does_not_depend_on_arrival_order_or_batching(
    store: SqlHistoryStore,
) -> None:
    events = [
        entry(f"o{o}-v{v}", user=f"u{o % 3}", key=f"c:o{o}", version=v, at_ms=T0_MS + 10 * v)
        for o in range(6)
        for v in range(1, 5)
    ] + [entry(f"bonus-{i}", user=f"u{i % 3}", at_ms=T0_MS + i) for i in range(5)]
    rng = random.Random(7)
    shuffled = rng.sample(events, len(events))
    cuts = sorted(rng.sample(range(1, len(shuffled)), 6))
    for start, end in zip([0, *cuts], [*cuts, len(shuffled)], strict=True):
        await store.write(shuffled[start:end])

    for user in ("u0", "u1", "u2"):
        found = await store.lookup(user, limit=50, since_ms=0)
        orders = {i.title: (i.created_on, i.updated_on) for i in found if "-v" in i.title}
        assert orders == {
            f"title of o{o}-v4": (T0_MS + 10, T0_MS + 40) for o in range(6) if f"u{o % 3}" == user
        }


async def test_one_batch_may_carry_several_events_of_one_order(store: SqlHistoryStore) -> None:
    await store.write(
        [
            entry("v2", key=ORDER, version=2, at_ms=T0_MS + 2, title="v2"),
            entry("v1", key=ORDER, version=1, at_ms=T0_MS + 1, title="v1"),
            entry("v3", key=ORDER, version=3, at_ms=T0_MS + 3, title="v3"),
        ]
    )

    (order,) = await store.lookup("u1", limit=50, since_ms=0)

    assert (order.title, order.created_on) == ("v3", T0_MS + 1)


async def test_customers_see_only_their_own_items(store: SqlHistoryStore) -> None:
    await store.write([entry("a", user="u1", key=ORDER), entry("b", user="u2", key=ORDER)])

    assert await titles(store, "u1") == ["title of a"]
    assert await titles(store, "u2") == ["title of b"]
    assert await titles(store, "nobody") == []


async def test_lookup_returns_at_most_the_limit_and_nothing_past_retention(
    store: SqlHistoryStore,
) -> None:
    await store.write([entry(f"e{i}", at_ms=T0_MS + i) for i in range(10)])

    found = await store.lookup("u1", limit=3, since_ms=T0_MS + 8)

    assert [i.title for i in found] == ["title of e9", "title of e8"]
    assert len(await store.lookup("u1", limit=3, since_ms=0)) == 3


async def test_mark_read_marks_only_the_customers_own_items(store: SqlHistoryStore) -> None:
    await store.write([entry("a"), entry("b"), entry("theirs", user="u2")])
    mine = {i.title: i.id for i in await store.lookup("u1", limit=50, since_ms=0)}
    (theirs,) = await store.lookup("u2", limit=50, since_ms=0)

    marked = await store.mark_read(
        "u1", [mine["title of a"], theirs.id, "not-an-id", "99999999999999999999"], at_ms=T0_MS
    )

    assert marked == 1
    assert {i.title: i.read for i in await store.lookup("u1", limit=50, since_ms=0)} == {
        "title of a": True,
        "title of b": False,
    }
    assert not (await store.lookup("u2", limit=50, since_ms=0))[0].read
    assert await store.mark_read("u1", [mine["title of a"]], at_ms=T0_MS) == 0, "already read"


async def test_a_newer_status_makes_a_read_order_unread_again(store: SqlHistoryStore) -> None:
    await store.write([entry("v1", key=ORDER, version=1)])
    (order,) = await store.lookup("u1", limit=50, since_ms=0)
    await store.mark_read("u1", [order.id], at_ms=T0_MS)
    await store.write([entry("v1", key=ORDER, version=1)])  # a replay: still read
    assert (await store.lookup("u1", limit=50, since_ms=0))[0].read

    await store.write([entry("v2", key=ORDER, version=2, at_ms=T0_MS + 1)])

    assert not (await store.lookup("u1", limit=50, since_ms=0))[0].read


async def test_prune_users_keeps_each_customers_newest_items(store: SqlHistoryStore) -> None:
    await store.write(
        [entry(f"{u}-{i}", user=u, at_ms=T0_MS + i) for u in ("u1", "u2", "u3") for i in range(5)]
    )

    removed = await store.prune_users(["u1", "u2"], keep=2)

    assert removed == 6
    assert await titles(store, "u1") == ["title of u1-4", "title of u1-3"]
    assert await titles(store, "u2") == ["title of u2-4", "title of u2-3"]
    assert len(await titles(store, "u3")) == 5, "a customer not named is left alone"


async def test_prune_before_removes_old_items_a_chunk_at_a_time(store: SqlHistoryStore) -> None:
    await store.write([entry(f"e{i}", at_ms=T0_MS + i) for i in range(10)])

    assert await store.prune_before(T0_MS + 7, limit=4) == 4
    assert await store.prune_before(T0_MS + 7, limit=4) == 3
    assert await store.prune_before(T0_MS + 7, limit=4) == 0
    assert await titles(store) == ["title of e9", "title of e8", "title of e7"]


async def test_texts_any_customer_data_may_hold_are_stored(store: SqlHistoryStore) -> None:
    text = "Ёлка 🎄 «кавычки» \\ '; DROP TABLE history_items; -- " + "я" * 5000
    await store.write(
        [entry("long", text=text, promocode="ПРОМО-1", deeplink="imshop://x?a=1&b=2")]
    )

    (item,) = await store.lookup("u1", limit=50, since_ms=0)

    assert (item.text, item.promocode, item.deeplink) == (text, "ПРОМО-1", "imshop://x?a=1&b=2")


async def test_what_json_escapes_and_the_largest_versions_come_back_as_written(
    store: SqlHistoryStore,
) -> None:
    # SQLite's batch travels as one JSON array: every character JSON escapes, and
    # integers up to the contract's 64-bit bound, must come back unchanged.
    odd = 'кавычки " \\ /\n\t\x01\x1f \u2028 {"$[0]": null} 🎄 \\u0041'
    user = 'u"1\\'
    top = 2**63 - 1
    await store.write([entry("odd", user=user, title=odd, text=odd, url=odd, promocode=odd)])
    await store.write([entry("v1", user=user, key=ORDER, version=top - 1, title="older")])
    await store.write([entry("v2", user=user, key=ORDER, version=top, at_ms=T0_MS - 5)])
    await store.write([entry("v0", user=user, key=ORDER, version=top - 1, title="late")])

    item, order = await store.lookup(user, limit=50, since_ms=0)  # newest first

    assert (item.title, item.text, item.url, item.promocode) == (odd, odd, odd, odd)
    assert (order.title, order.created_on, order.updated_on) == (
        "title of v2",
        T0_MS - 5,
        T0_MS - 5,
    )
