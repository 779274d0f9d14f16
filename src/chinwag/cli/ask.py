"""`chinwag ask PROMPT`: one answer, streamed."""

from __future__ import annotations

import sys
from typing import Any

import click

from chinwag.cli import client_from
from chinwag.cli.options import parse_params
from chinwag.cli.render import AnswerPrinter, echo_err
from chinwag.prices import money


@click.command()
@click.argument("prompt", nargs=-1)
@click.option("-b", "--bot", help="The bot to ask (slug, uid or name).")
@click.option(
    "-c", "--continue", "continue_", is_flag=True, help="Continue the latest conversation."
)
@click.option("--conversation", metavar="ID", help="Continue this conversation.")
@click.option("-s", "--system", help="A system prompt for this turn.")
@click.option("--no-stream", is_flag=True, help="Print the answer when it is complete.")
@click.option("--json", "as_json", is_flag=True, help="Print the whole reply as JSON.")
@click.option("--usage", "show_usage", is_flag=True, help="Print tokens, words and cost to stderr.")
@click.option(
    "-o",
    "--option",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="A sampling setting: temperature, max_tokens, top_p, top_k, seed, stop.",
)
@click.option("--language", help="Answer in this language.")
@click.option("--max-words", type=click.IntRange(min=1), help="Answer in at most N words.")
@click.option("--user", help="Whose turn this is (default: the local user).")
@click.option("--search/--no-search", default=None, help="Search the web first (search.url).")
@click.option(
    "-a",
    "--attach",
    "files",
    multiple=True,
    metavar="FILE",
    help="Attach a file: text goes into the prompt, an image to models that take images.",
)
@click.pass_context
def ask(
    ctx: click.Context,
    prompt: tuple[str, ...],
    bot: str | None,
    continue_: bool,
    conversation: str | None,
    system: str | None,
    no_stream: bool,
    as_json: bool,
    show_usage: bool,
    params: tuple[str, ...],
    language: str | None,
    max_words: int | None,
    user: str | None,
    search: bool | None,
    files: tuple[str, ...],
) -> None:
    """Answer PROMPT, streamed. Piped input is added after the prompt, attached files
    (-a) after that."""
    text = " ".join(prompt)
    if not sys.stdin.isatty():
        piped = sys.stdin.read().strip()
        text = f"{text}\n\n{piped}" if text and piped else text or piped
    if not text.strip() and not files:
        raise click.UsageError('Give a prompt, as in: chinwag "Say hello", or pipe text in.')
    client = client_from(ctx)
    if continue_ and conversation is None:
        latest = client.conversations.latest(user=user)
        if latest is None:
            raise click.UsageError("There is no conversation to continue yet: drop -c.")
        conversation = latest.id
    options: dict[str, Any] = {
        "bot": bot, "conversation": conversation, "system": system, "language": language,
        "max_words": max_words, "user": user, "search": search, **parse_params(params),
        "files": list(files) or None,
    }  # fmt: skip
    options = {k: v for k, v in options.items() if v is not None}
    if as_json or no_stream:
        reply = client.ask(text, **options)
        click.echo(reply.model_dump_json(indent=2) if as_json else reply.text)
    else:
        with client.stream(text, **options) as stream, AnswerPrinter() as printer:
            for delta in stream:
                printer.add(delta)
        reply = stream.reply
    if reply.sources and not as_json:
        click.echo("\nSources:")
        for n, source in enumerate(reply.sources, 1):
            click.echo(f"[{n}] {source.title}: {source.url}")
    if show_usage:
        u = reply.usage
        estimated = " (estimated)" if u.estimated else ""
        echo_err(
            f"usage: {u.prompt_tokens} tokens in, {u.completion_tokens} out{estimated}; "
            f"{u.prompt_words} words in, {u.completion_words} out; model {reply.model}; "
            f"cost {money(u.cost)}"
        )
