"""`chinwag stats`: usage per day, as a table and a bar chart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import click

from chinwag.cli import client_from
from chinwag.prices import money

BAR = 40


@click.command()
@click.option("--from", "start", metavar="YYYY-MM-DD", help="First day (default: 6 days ago).")
@click.option("--to", "end", metavar="YYYY-MM-DD", help="Last day (default: today).")
@click.option("--user", help="Whose usage (default: the local user).")
@click.option("--bot", help="Only this bot's.")
@click.option("--model", help="Only this model's (as turns name it: gpt-4o-mini, llama3.2...).")
@click.pass_context
def stats(
    ctx: click.Context,
    start: str | None,
    end: str | None,
    user: str | None,
    bot: str | None,
    model: str | None,
) -> None:
    """Requests, tokens, words and cost per day, and tokens per day as bars. The cost is
    what the priced requests cost (US dollars), "unpriced" counts the requests whose model
    has no known price, and "unknown" is a day on which none had one."""
    if start is None:
        start = (datetime.now(UTC).date() - timedelta(days=6)).isoformat()
    report = client_from(ctx).stats.usage(
        start_date=start, end_date=end, user=user, bot=bot, model=model
    )
    peak = max((item.total_tokens for item in report.items), default=0) or 1
    header = f"{'day':10s} {'requests':>8s} {'errors':>6s} {'tokens in':>10s} {'out':>8s}"
    click.echo(f"{header} {'words in':>9s} {'out':>7s} {'cost':>10s} {'unpriced':>8s}  tokens")
    for item in report.items:
        bar = "█" * round(BAR * item.total_tokens / peak)
        click.echo(
            f"{item.date.isoformat():10s} {item.requests:8d} {item.errors:6d} "
            f"{item.prompt_tokens:10d} {item.completion_tokens:8d} {item.prompt_words:9d} "
            f"{item.completion_words:7d} {money(item.cost):>10s} {item.unpriced:8d}  {bar}"
        )
    t = report.total
    click.echo(
        f"{'total':10s} {t.requests:8d} {t.errors:6d} {t.prompt_tokens:10d} "
        f"{t.completion_tokens:8d} {t.prompt_words:9d} {t.completion_words:7d} "
        f"{money(t.cost):>10s} {t.unpriced:8d}"
    )
