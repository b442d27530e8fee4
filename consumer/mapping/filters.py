"""Russian text filters for push templates, built on Babel's CLDR data.

Numbers use the CLDR Russian style: a comma before the fraction and a
non-breaking space (U+00A0) between digit groups. A non-breaking space also
joins a number to its noun or currency sign, so a phone never wraps
"1 500" away from "₽" or "бонусов".

Dates and times are shown in the recipient's time zone. The render context
carries that zone and the current time under ``RENDER_INFO`` (a name a template
cannot write), so templates never pass them.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale
from babel.numbers import get_currency_symbol, parse_pattern
from liquid.exceptions import FilterArgumentError
from liquid.filter import with_context

NBSP = "\u00a0"
NARROW_NBSP = "\u202f"  # the other no-break space (some locales group digits with it)
ELLIPSIS = "…"
RENDER_INFO = "__render_info__"
_RU = Locale("ru")
_FEW_FORM_CATEGORIES = frozenset({"few", "other"})  # "other" = fractions: 1,5 бонуса
# Parsed once: Babel's format_* functions re-parse the locale and pattern per call.
_NUMBER = parse_pattern("#,##0.###")
_WHOLE_MONEY = parse_pattern("#,##0")
_MONEY = parse_pattern("#,##0.00")
_MONTHS = _RU.months["format"]["wide"]  # genitive: 25 ноября


@dataclass(frozen=True, slots=True)
class RenderInfo:
    """What date filters need beyond the event: its zone and the current time."""

    tz: ZoneInfo
    now: dt.datetime

    @property
    def today(self) -> dt.date:
        return self.now.astimezone(self.tz).date()


def _fail(name: str, message: str) -> FilterArgumentError:
    return FilterArgumentError(f"{name}: {message}", token=None)


def to_number(value: object, name: str) -> int | Decimal:
    """The value as an exact number; whole numbers become ``int`` (100.00 -> 100)."""
    if isinstance(value, Mapping):
        fields = ", ".join(str(key) for key in value)
        hint = "; use its amount" if "amount" in value else ""
        raise _fail(name, f"expected a number, got a group of fields ({fields}){hint}")
    if isinstance(value, bool) or value is None:
        raise _fail(name, f"expected a number, got {value!r}")
    if isinstance(value, int):
        return value
    try:
        number = Decimal(str(value).strip().replace(",", "."))
    except InvalidOperation:
        raise _fail(name, f"expected a number, got {value!r}") from None
    if not number.is_finite():
        raise _fail(name, f"expected a number, got {value!r}")
    if number == number.to_integral_value():
        return int(number)
    return number.normalize()


# Babel's pattern and plural-rule code costs 5-15 µs a call and the same few
# amounts come again and again; ``to_number`` gives one canonical key per value.
@functools.lru_cache(maxsize=4096)
def _number_text(number: int | Decimal) -> str:
    return str(_NUMBER.apply(number, _RU))


@functools.lru_cache(maxsize=4096)
def _plural_category(number: int | Decimal) -> str:
    return str(_RU.plural_form(number))


@functools.lru_cache(maxsize=4096)
def _money_text(number: int | Decimal) -> str:
    return str((_WHOLE_MONEY if isinstance(number, int) else _MONEY).apply(number, _RU))


@functools.lru_cache(maxsize=256)
def _currency_symbol(code: str) -> str:
    return str(get_currency_symbol(code, locale=_RU))


def format_number(value: object, name: str = "number") -> str:
    return _number_text(to_number(value, name))


def plural_form(value: object, one: str, few: str, many: str, name: str = "plural") -> str:
    """The noun form CLDR's Russian rules pick: 1 бонус, 2 бонуса, 5 бонусов, 1,5 бонуса."""
    category = _plural_category(to_number(value, name))
    if category == "one":
        return one
    return few if category in _FEW_FORM_CATEGORIES else many


def plural(value: object, one: object, few: object, many: object) -> str:
    forms = _forms("plural", one, few, many)
    return f"{format_number(value, 'plural')}{NBSP}{plural_form(value, *forms)}"


def plural_word(value: object, one: object, few: object, many: object) -> str:
    return plural_form(value, *_forms("plural_word", one, few, many), name="plural_word")


def _forms(name: str, *forms: object) -> tuple[str, str, str]:
    if not all(isinstance(form, str) and form for form in forms):
        raise _fail(
            name, "the three forms must be words in quotes, e.g. 'бонус', 'бонуса', 'бонусов'"
        )
    one, few, many = (str(form) for form in forms)
    return one, few, many


def money(value: object, currency: object = None) -> str:
    """Roubles as shops write them: 1 990 ₽, 1 990,50 ₽ (kopecks only when there are some)."""
    amount: object = value
    code = currency
    if isinstance(value, Mapping):
        if "amount" not in value:
            raise _fail("money", "the money object has no amount")
        amount = value["amount"]
        code = code or value.get("currency")
    text = _money_text(to_number(amount, "money"))
    return f"{text}{NBSP}{_currency_sign(code)}"


def _currency_sign(code: object) -> str:
    if code is None:
        return "₽"
    if not isinstance(code, str) or len(code) != 3 or not code.isalpha():
        raise _fail("money", f"expected a currency code like RUB, got {code!r}")
    return _currency_symbol(code.upper())


def _info(context: Any) -> RenderInfo:
    info = context.globals.get(RENDER_INFO)
    if not isinstance(info, RenderInfo):  # pragma: no cover - set by every render
        raise _fail("date", "no time zone in the render context")
    return info


def _local(value: object, info: RenderInfo, name: str) -> dt.datetime | dt.date:
    if isinstance(value, dt.datetime):
        return value.astimezone(info.tz) if value.tzinfo else value
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return _local(dt.datetime.fromisoformat(value), info, name)
        except ValueError:
            pass
    raise _fail(name, f"expected a date or a time, got {value!r}")


def _date_text(day: dt.date, today: dt.date) -> str:
    text = f"{day.day} {_MONTHS[day.month]}"
    return text if day.year == today.year else f"{text} {day.year} года"


def _as_date(value: dt.datetime | dt.date) -> dt.date:
    return value.date() if isinstance(value, dt.datetime) else value


@with_context
def date_ru(value: object, *, context: Any) -> str:
    """25 ноября (the year only when it is not this year: 1 февраля 2027 года)."""
    info = _info(context)
    return _date_text(_as_date(_local(value, info, "date_ru")), info.today)


_RELATIVE_DAYS = {-1: "вчера", 0: "сегодня", 1: "завтра", 2: "послезавтра"}


@with_context
def day(value: object, *, context: Any) -> str:
    """сегодня, завтра, послезавтра, вчера, else 25 ноября."""
    info = _info(context)
    return _day_text(_as_date(_local(value, info, "day")), info.today)


def _day_text(when: dt.date, today: dt.date) -> str:
    return _RELATIVE_DAYS.get((when - today).days) or _date_text(when, today)


@with_context
def moment(value: object, *, context: Any) -> str:
    """When something happens, as a person says it: сегодня в 18:00, 1 декабря в 10:00.

    A date alone reads like ``day``. A time of exactly 00:00 is the night before
    that day (points that burn at 00:00 on the 26th burn tonight, on the 25th):
    «сегодня в полночь» when that night is tonight, else «в ночь на 27 ноября».
    """
    info = _info(context)
    when = _local(value, info, "moment")
    if not isinstance(when, dt.datetime):
        return _day_text(when, info.today)
    if (when.hour, when.minute, when.second) == (0, 0, 0):
        if when.date() - dt.timedelta(days=1) == info.today:
            return "сегодня в полночь"
        return f"в ночь на {_date_text(when.date(), info.today)}"
    return f"{_day_text(when.date(), info.today)} в {when:%H:%M}"


@with_context
def time(value: object, *, context: Any) -> str:
    """10:00 in the recipient's time zone."""
    when = _local(value, _info(context), "time")
    if not isinstance(when, dt.datetime):
        raise _fail("time", f"expected a time, got the date {when.isoformat()}")
    return f"{when:%H:%M}"


@with_context
def time_range(start: object, end: object, *, context: Any) -> str:
    """с 10:00 до 14:00 (the end's day too when it is another day)."""
    info = _info(context)
    first = _local(start, info, "time_range")
    last = _local(end, info, "time_range")
    if not isinstance(first, dt.datetime) or not isinstance(last, dt.datetime):
        raise _fail("time_range", "expected two times")
    if first.date() == last.date():
        return f"с {first:%H:%M} до {last:%H:%M}"
    return f"с {first:%H:%M} до {day(last, context=context)} {last:%H:%M}"


def truncate(value: object, length: object = 50, end: object = ELLIPSIS) -> str:
    """Cut to at most ``length`` characters, the ellipsis included, at a word end if near."""
    text = str(value)
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise _fail("truncate", f"expected a length in characters, got {length!r}")
    tail = str(end)
    if len(text) <= length:
        return text
    cut = text[: max(0, length - len(tail))]
    word_end = cut.rstrip().rfind(" ")
    if word_end > len(cut) * 2 // 3:
        cut = cut[:word_end]
    return cut.rstrip(" ,.;:-–—" + NBSP) + tail


@dataclass(frozen=True, slots=True)
class FilterSpec:
    """How a filter may be called, for the checks: positional argument counts."""

    min_args: int = 0
    max_args: int = 0
    usage: str = ""


OUR_FILTERS: dict[str, tuple[Callable[..., Any], FilterSpec]] = {
    "plural": (plural, FilterSpec(3, 3, "plural: 'бонус', 'бонуса', 'бонусов'")),
    "plural_word": (plural_word, FilterSpec(3, 3, "plural_word: 'день', 'дня', 'дней'")),
    "number": (format_number, FilterSpec(0, 0, "number")),
    "money": (money, FilterSpec(0, 1, "money  or  money: 'RUB'")),
    "date_ru": (date_ru, FilterSpec(0, 0, "date_ru")),
    "day": (day, FilterSpec(0, 0, "day")),
    "moment": (moment, FilterSpec(0, 0, "moment")),
    "time": (time, FilterSpec(0, 0, "time")),
    "time_range": (time_range, FilterSpec(1, 1, "time_range: order.delivery.eta_end")),
    "truncate": (truncate, FilterSpec(1, 2, "truncate: 40")),
}

# Standard Liquid filters that are safe and useful in push text; English-only ones
# (date, money from extras) are left out on purpose.
BUILTIN_FILTERS: dict[str, FilterSpec] = {
    "default": FilterSpec(1, 1, "default: 'text'"),
    "upcase": FilterSpec(),
    "downcase": FilterSpec(),
    "capitalize": FilterSpec(),
    "strip": FilterSpec(),
    "append": FilterSpec(1, 1, "append: 'text'"),
    "prepend": FilterSpec(1, 1, "prepend: 'text'"),
    "replace": FilterSpec(2, 2, "replace: 'old', 'new'"),
    "remove": FilterSpec(1, 1, "remove: 'text'"),
    "url_encode": FilterSpec(),
    "size": FilterSpec(),
    "plus": FilterSpec(1, 1, "plus: 1"),
    "minus": FilterSpec(1, 1, "minus: 1"),
    "abs": FilterSpec(),
    "round": FilterSpec(0, 1, "round  or  round: 2"),
}

FILTER_SPECS: dict[str, FilterSpec] = {
    **BUILTIN_FILTERS,
    **{name: spec for name, (_, spec) in OUR_FILTERS.items()},
}
