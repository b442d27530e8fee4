"""``python -m consumer appmetrica report``: the push-campaign report, one row per rule.

    python -m consumer appmetrica report [--since 1d] [--until today] [--rule ID] [--json]

Pulls AppMetrica's push-campaign report through its Reporting API
(``APPMETRICA_REPORT_URL``, ``Authorization: OAuth APPMETRICA_TOKEN``, for
``APPMETRICA_APP_ID``) and prints, per rule: the devices its pushes were sent
to, received and opened, the open rate (opened of sent) and the number of
transfers; ``--json`` prints the same as one JSON object. Requests are paced to
``APPMETRICA_REPORT_REQUESTS_PER_S`` and counted (on standard error). A refused
token, an unknown application or a used-up quota ends the command with one line
saying which.

Days are AppMetrica's (the API resolves ``NdaysAgo`` in the app's time zone):
``--since 7d`` is seven days ago through ``--until`` (default today), both
included.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import re
import sys
from typing import Any

import httpx

from consumer.clock import Clock, SystemClock
from consumer.dispatch.budget import Budget
from consumer.providers.appmetrica.report import QUOTA_TEXT, Report, ReportClient, RuleRow
from consumer.settings import AppMetricaSettings, load_settings

_DAYS = re.compile(r"^(\d+)d$")
COLUMNS = ("rule", "class", "sent", "received", "opened", "open rate", "transfers")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("appmetrica", help="AppMetrica: the push report per rule")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    report = sub.add_parser(
        "report", help="sent, received and opened devices per rule (the Reporting API)"
    )
    report.add_argument(
        "--since",
        type=report_day,
        default="1d",
        help="first day: Nd (N days ago), YYYY-MM-DD, today or yesterday (default 1d)",
    )
    report.add_argument(
        "--until", type=report_day, default="today", help="last day, the same forms (default today)"
    )
    report.add_argument(
        "--rule", default=None, help="only this rule: its id, with or without the file name"
    )
    report.add_argument("--json", action="store_true", help="print one JSON object")
    report.set_defaults(func=_report)

    def _usage(_args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    parser.set_defaults(func=_usage)


def report_day(text: str) -> str:
    """A day as the Reporting API takes it; ``Nd`` becomes ``NdaysAgo``."""
    if text in ("today", "yesterday"):
        return text
    if match := _DAYS.match(text):
        days = int(match.group(1))
        return "today" if days == 0 else f"{days}daysAgo"
    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a day the report knows: use Nd (days ago, e.g. 7d), "
            "YYYY-MM-DD, today or yesterday (AppMetrica counts whole days)"
        ) from None


async def fetch(
    settings: AppMetricaSettings,
    since: str,
    until: str,
    rule: str | None = None,
    *,
    clock: Clock | None = None,
    http: httpx.AsyncClient | None = None,
    page_rows: int | None = None,
) -> Report:
    """The report, its requests paced by a budget of ``report_requests_per_s`` per second.

    The budget starts empty: a command run now and then has no earlier second to
    count (the daily quota is AppMetrica's to keep; its answer says when it is used up).
    """
    quota = Budget(
        limit=settings.report_requests_per_s,
        window_s=1.0,
        clock=clock or SystemClock(),
        assume_window_used=False,
    )
    paging = {} if page_rows is None else {"page_rows": page_rows}
    client = ReportClient(settings, quota, http=http, **paging)
    try:
        return await client.report(since, until, rule)
    finally:
        await client.aclose()


def as_table(report: Report) -> str:
    lines = [
        f"AppMetrica push report, app {report.app_id}, {report.date1} to {report.date2} "
        "(devices, summed over each rule's transfers)"
    ]
    if not report.rows:
        lines.append("no pushes of this service in that period")
        return "\n".join(lines)
    cells = [_cells(row) for row in [*report.rows, report.total()]]
    widths = [max(len(c[i]) for c in [COLUMNS, *cells]) for i in range(len(COLUMNS))]
    for values in [COLUMNS, *cells]:
        left = [values[i].ljust(widths[i]) for i in (0, 1)]
        right = [values[i].rjust(widths[i]) for i in range(2, len(COLUMNS))]
        lines.append("  ".join(left + right).rstrip())
    return "\n".join(lines)


def as_json(report: Report) -> str:
    return json.dumps(
        {
            "app_id": report.app_id,
            "date1": report.date1,
            "date2": report.date2,
            "rules": [_fields(row) for row in report.rows],
            "total": _fields(report.total()),
            "requests": report.requests,
        },
        ensure_ascii=False,
        indent=2,
    )


def _cells(row: RuleRow) -> tuple[str, ...]:
    rate = "-" if row.open_rate is None else f"{row.open_rate:.1%}"
    numbers = (row.sent, row.received, row.opened)
    return (row.rule, row.push_class, *map(str, numbers), rate, str(row.transfers))


def _fields(row: RuleRow) -> dict[str, Any]:
    rate = None if row.open_rate is None else round(row.open_rate, 4)
    return {
        "rule": row.rule,
        "class": row.push_class,
        "sent": row.sent,
        "received": row.received,
        "opened": row.opened,
        "open_rate": rate,
        "transfers": row.transfers,
    }


def _report(args: argparse.Namespace) -> int:
    settings = load_settings().appmetrica
    report = asyncio.run(fetch(settings, args.since, args.until, args.rule))
    print(as_json(report) if args.json else as_table(report))
    print(
        f"{report.requests} Reporting API request(s); AppMetrica allows {QUOTA_TEXT}",
        file=sys.stderr,
    )
    return 0
