"""Usage statistics: tokens and words in and out, per user, bot, model and day (aBLT's)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from chinwag import checks
from chinwag.errors import InputError
from chinwag.types import USAGE_COUNTERS, Bot, StatisticItem, Statistics, StatisticTotal

if TYPE_CHECKING:
    from chinwag.engine import Engine


class Stats:
    """Usage per user and day, read from the daily rollup (`client.stats`)."""

    MAX_DAYS = 366  # items one usage report lists; total() takes any span

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def usage(
        self,
        *,
        start_date: date | str | None = None,
        end_date: date | str | None = None,
        user: str | int | None = None,
        bot: str | Bot | None = None,
        empty_days: bool = True,
        model: str | None = None,
    ) -> Statistics:
        """One item per day from start_date to end_date (default: today), and the total;
        `empty_days=False` lists only the days with use, over any span (as aBLT's); one
        bot's or one model's use only, if given."""
        if not isinstance(empty_days, bool):
            raise InputError(f"empty_days must be True or False, not {empty_days!r:.60}.")
        model = checks.optional_name(model, "model")
        return await self._report(
            start_date, end_date, user, bot, items=True, empty=empty_days, model=model
        )

    async def day(
        self, date: date | str | None = None, *, user: str | int | None = None
    ) -> StatisticItem:
        """One day's usage (default: today)."""
        stats = await self.usage(start_date=date, end_date=date, user=user)
        return stats.items[0]

    async def total(
        self,
        *,
        start_date: date | str | None = None,
        end_date: date | str | None = None,
        user: str | int | None = None,
    ) -> StatisticTotal:
        """Usage added up from start_date to end_date (default: today), over any span."""
        return (await self._report(start_date, end_date, user, None, items=False)).total

    async def _report(
        self,
        start_date: date | str | None,
        end_date: date | str | None,
        user: str | int | None,
        bot: str | Bot | None,
        *,
        items: bool,
        empty: bool = True,
        model: str | None = None,
    ) -> Statistics:
        start = day_of(start_date)
        end = day_of(end_date) if end_date is not None else max(start, day_of(None))
        if end < start:
            raise InputError(f"end_date {end} is before start_date {start}.")
        days = (end - start).days + 1
        if items and empty and days > self.MAX_DAYS:
            raise InputError(
                f"stats.usage lists at most {self.MAX_DAYS} days, one item each, and "
                f"{start} to {end} is {days}: use stats.total, or empty_days=False, for a "
                "longer span."
            )
        store, uid, _ = await self._engine.scope(user)
        bot_uid = (await self._engine.bot(bot, uid)).uid if bot is not None else None
        # Only days with use have rows, so the cost follows the use, never the span.
        rows = {
            row[0]: row[1:]
            for row in await store.usage_by_day(uid, start, end, bot_uid=bot_uid, model=model)
        }
        total = StatisticTotal(start_date=start, end_date=end, **_counts(list(rows.values())))
        listed = []
        if items:
            span = (start + timedelta(days=n) for n in range(days))
            for day in span if empty else sorted(rows):
                listed.append(
                    StatisticItem(date=day, **_counts([rows[day]] if day in rows else []))
                )
        return Statistics(total=total, items=listed)


def _counts(rows: list[tuple[Any, ...]]) -> dict[str, Any]:
    """The counters of these rollup rows added up, and their cost: the known costs' sum,
    or None when every request was unpriced (a mix reports the priced part and how many
    were not, in `unpriced`)."""
    sums: dict[str, Any] = {
        f: sum(int(row[i]) for row in rows) for i, f in enumerate(USAGE_COUNTERS)
    }
    known = sum(float(row[len(USAGE_COUNTERS)] or 0) for row in rows)
    sums["cost"] = None if sums["requests"] and sums["unpriced"] == sums["requests"] else known
    return sums


def day_of(value: date | str | None) -> date:
    """A date from a date, a datetime or 'YYYY-MM-DD'; today (UTC) for None."""
    if value is None:
        return datetime.now(UTC).date()
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise InputError(f"Not a date: {value!r:.60}. Use a date or 'YYYY-MM-DD'.") from None


__all__ = ["Stats", "day_of"]
