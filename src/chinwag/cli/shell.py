"""`chinwag chat`: an interactive shell on prompt_toolkit.

Enter sends; Alt-Enter (or Esc then Enter) starts a new line. Ctrl-C stops the answer
in flight and keeps what was said, marked partial; Ctrl-D leaves. /help lists commands.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, TextIO

import click
from prompt_toolkit.completion import Completer  # this module loads only for `chinwag chat`
from prompt_toolkit.document import Document

from chinwag.cli import client_from
from chinwag.cli.render import AnswerPrinter
from chinwag.cli.signals import Terminated
from chinwag.prices import money

if TYPE_CHECKING:
    from prompt_toolkit.completion import CompleteEvent, Completion

    from chinwag.client.sync import Client
    from chinwag.types import Bot, Reply


@dataclass
class Command:
    run: Callable[[Shell, str], bool | None]  # True: leave the shell
    help: str
    argument: str = ""  # what completes after it: "bot", "conversation", "file" or ""


COMMANDS: dict[str, Command] = {}
CONSENT_WAIT = 600.0  # seconds an MCP tool's call waits for the person's answer


def command(name: str, help: str, argument: str = "") -> Callable[[Any], Any]:
    def register(fn: Callable[[Shell, str], bool | None]) -> Callable[[Shell, str], bool | None]:
        COMMANDS[name] = Command(fn, help, argument)
        return fn

    return register


class Shell:
    """One chat session: the current bot and conversation, and what the user typed."""

    def __init__(
        self,
        client: Client,
        *,
        bot: str | None = None,
        conversation: str | None = None,
        user: str | None = None,
        input: Any = None,
        output: Any = None,
        out: TextIO | None = None,
        markdown: bool | None = None,
    ) -> None:
        from prompt_toolkit import PromptSession

        if client.config.settings.titles.mode == "auto":
            # Here a person reads a list of conversations: titles worth a model call,
            # written in the background after the first exchange.
            client.config.set("titles.mode", "model")
        from prompt_toolkit.history import FileHistory
        from prompt_toolkit.key_binding import KeyBindings

        self.client = client
        self.user = user
        self.conversation = conversation
        self.bot: Bot = self.find_bot(bot)
        self.model: str | None = None  # /model: the bot on another model (a turn's model=)
        self.system: str | None = None
        self.files: list[str] = []  # /attach: paths sent with the next question
        self.out = out
        self.markdown = markdown
        keys = KeyBindings()

        @keys.add("escape", "enter")
        def _newline(event: Any) -> None:
            event.current_buffer.insert_text("\n")

        history = client.config.paths.data_dir / "history"
        history.parent.mkdir(parents=True, exist_ok=True)
        # MCP tools' consent: the tool's call waits on the client's loop for the answer
        # this thread gets from the person when it shows the call (ToolCallEvent).
        self._consents: dict[str, Future[bool]] = {}
        self._consents_lock = threading.Lock()
        self.session: Any = PromptSession(
            history=FileHistory(str(history)),
            completer=SlashCompleter(self),
            key_bindings=keys,
            input=input,
            output=output,
        )

    @contextlib.contextmanager
    def _asking(self) -> Iterator[None]:
        """MCP tools ask the person while a streamed turn shows its calls; elsewhere (a
        /retry, an /edit) nobody would see the question, so config alone decides."""
        mcp = self.client._async._engine.mcp if self.client.server is None else None
        with self._consents_lock:  # an answer no call took (its arguments were bad) is
            self._consents.clear()  # not carried into this turn
        if mcp is not None:
            mcp.consent = self._consent
        try:
            yield
        finally:
            if mcp is not None:
                mcp.consent = None

    def _pending(self, key: str) -> Future[bool]:
        with self._consents_lock:
            return self._consents.setdefault(key, Future())

    async def _consent(self, server: str, tool: str, arguments: dict[str, Any]) -> bool:
        """Wait (on the client's loop) for the person's answer about this call."""
        import anyio

        key = f"{server}/{tool}"
        answer = self._pending(key)
        try:
            wait = partial(answer.result, timeout=CONSENT_WAIT)
            allowed: bool = await anyio.to_thread.run_sync(wait, abandon_on_cancel=True)
            return allowed
        except TimeoutError:
            return False
        finally:
            with self._consents_lock:
                if self._consents.get(key) is answer:
                    del self._consents[key]

    def _ask_consent(self, printer: AnswerPrinter, tool: str) -> None:
        """Ask about an MCP tool's call that config does not allow, before it runs."""
        if self.client.server is not None:
            return
        asks = self.client._async._engine.mcp.asks(tool)
        if asks is None:
            return
        server, name = asks
        printer.pause()
        try:
            said = self.session.prompt(
                f"Allow the tool {name!r} of MCP server {server!r} to run (this session)? [y/N] "
            )
        except (KeyboardInterrupt, EOFError):
            said = ""
        finally:
            printer.resume()
        self._pending(f"{server}/{name}").set_result(said.strip().lower() in ("y", "yes"))

    def find_bot(self, key: str | None) -> Bot:
        """A bot by uid, slug or name, as this shell's user sees them."""
        return self.client.bots.find(key, user=self.user)

    def say(self, text: str = "") -> None:
        click.echo(text, file=self.out)

    def prompt(self) -> str:
        where = self.conversation[:8] if self.conversation else "new"
        attached = (
            f" +{len(self.files)} file{'s' if len(self.files) > 1 else ''}" if self.files else ""
        )
        return f"{self.bot.slug} {where}{attached}> "

    def run(self) -> None:
        if self.bot.welcome_message:
            self.say(self.bot.welcome_message)
        self.say("Type /help for commands; Ctrl-D leaves.")
        while True:
            try:
                text = self.session.prompt(self.prompt())
            except Terminated:
                raise
            except KeyboardInterrupt:
                continue  # Ctrl-C at the prompt clears the line
            except EOFError:
                return
            text = text.strip()
            if not text:
                continue
            if text.startswith("/"):
                name, _, rest = text[1:].partition(" ")
                found = COMMANDS.get(name)
                if found is None:
                    self.say(f"Unknown command /{name}: /help lists them.")
                    continue
                try:
                    if found.run(self, rest.strip()):
                        return
                except click.UsageError as exc:
                    self.say(f"usage: {exc.message}")
                except Exception as exc:  # the shell outlives any one command
                    self.say(f"error: {exc}")
                continue
            self.send(text)

    def options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"bot": self.bot, "conversation": self.conversation}
        if self.system is not None:
            options["system"] = self.system
        if self.model is not None:
            options["model"] = self.model
        if self.user is not None:
            options["user"] = self.user
        return options

    def attached(self) -> dict[str, Any]:
        """The files /attach set aside, as a question's option."""
        return {"files": list(self.files)} if self.files else {}

    def send(self, text: str, **overrides: Any) -> None:
        """Stream an answer; Ctrl-C stops it and keeps the partial text. Files set aside go
        with the question, and stay for the next one if it was refused before it was stored."""
        from chinwag.errors import ChinwagError
        from chinwag.types import SearchEvent, TextDelta, ToolCallEvent, ToolResultEvent

        stream = self.client.stream(text, **{**self.options(), **self.attached(), **overrides})
        reply: Reply | None = None
        refused = False
        with self._asking():  # only here is a call shown, so only here asked
            try:
                with AnswerPrinter(markdown=self.markdown, out=self.out) as printer:
                    for event in stream.events():
                        if isinstance(event, TextDelta):
                            printer.add(event.text)
                        elif isinstance(event, ToolCallEvent):
                            printer.add(f"\n[tool {event.call.name}({event.call.arguments})]\n")
                            self._ask_consent(printer, event.call.name)
                        elif isinstance(event, ToolResultEvent):
                            mark = "error" if event.error else "result"
                            printer.add(f"[{mark}: {event.content[:200]}]\n\n")
                        elif isinstance(event, SearchEvent) and event.step != "searching":
                            found = ", ".join(s.url for s in event.results) or event.error or ""
                            printer.add(f"[search {event.step}: {found}]\n\n")
                reply = stream.reply
            except KeyboardInterrupt as interrupt:
                stream.close()  # waits until the partial answer is stored
                if isinstance(interrupt, Terminated):
                    raise
                self.say("[stopped: the partial answer is kept]")
            except ChinwagError as exc:
                reply = getattr(exc, "partial", None)
                refused = reply is None
                self.say(f"error: {exc}")
        if refused and self.files:
            self.say("(The attached files stay for your next question; /attach off drops them.)")
        elif not refused:
            self.files = []
        if reply is not None:
            self.conversation = reply.conversation_id
        elif self.conversation is None:
            latest = self.client.conversations.latest(user=self.user)
            self.conversation = latest.id if latest else None

    def show(self, reply: Reply) -> None:
        with AnswerPrinter(markdown=self.markdown, out=self.out) as printer:
            printer.add(reply.text)
        self.conversation = reply.conversation_id

    def need_conversation(self) -> str:
        if self.conversation is None:
            raise click.UsageError("no conversation yet: say something first, or /switch ID")
        return self.conversation


class SlashCompleter(Completer):
    """Completes /commands, then bot slugs or conversation ids after the ones that take them."""

    def __init__(self, shell: Shell) -> None:
        self.shell = shell

    def get_completions(self, document: Document, event: CompleteEvent) -> Iterable[Completion]:
        from prompt_toolkit.completion import Completion

        text = document.text_before_cursor
        if not text.startswith("/"):
            return
        name, space, word = text[1:].partition(" ")
        if not space:
            for candidate, cmd in COMMANDS.items():
                if candidate.startswith(name):
                    yield Completion(f"/{candidate}", -len(text), display_meta=cmd.help)
            return
        takes = COMMANDS[name].argument if name in COMMANDS else ""
        if not takes:
            return
        if takes == "file":
            from prompt_toolkit.completion import PathCompleter

            inner = Document(word, len(word))
            yield from PathCompleter(expanduser=True).get_completions(inner, event)
            return
        client = self.shell.client
        if takes == "bot":
            for bot in client.bots.list(user=self.shell.user):
                if bot.slug.startswith(word):
                    yield Completion(bot.slug, -len(word), display_meta=bot.name)
        else:
            for c in client.conversations.list(limit=50, user=self.shell.user):
                if c.id.startswith(word):
                    yield Completion(c.id, -len(word), display_meta=c.title or "")


# -- slash commands ---------------------------------------------------------------------


@command("help", "List the commands.")
def _help(shell: Shell, rest: str) -> None:
    for name, cmd in COMMANDS.items():
        shell.say(f"/{name:9s} {cmd.help}")
    shell.say("Alt-Enter starts a new line; Ctrl-C stops an answer; Ctrl-D leaves.")


@command("tools", "The bot's MCP tools; /tools allow NAME (or all) lets them run.")
def _tools(shell: Shell, rest: str) -> None:
    from chinwag.mcp import is_mcp

    client = shell.client
    if client.server is not None:
        shell.say(f"MCP tools run on the server ({client.server}), allowed by its config.")
        return
    mcp = client._async._engine.mcp
    named = [n for n in shell.bot.tools if is_mcp(n)]
    verb, _, what = rest.partition(" ")
    if verb == "allow":
        if not what.strip():
            raise click.UsageError("/tools allow NAME (mcp:SERVER/TOOL), or /tools allow all")
        wanted = named if what.strip() == "all" else what.split()
        for name in client._call(lambda: mcp.allow(wanted)):
            shell.say(f"allowed: {name}")
        return
    if rest:
        raise click.UsageError("/tools, or /tools allow NAME")
    if not named:
        shell.say("This bot names no MCP tools (its tools: key in the bot's settings).")
    for name, allowed in client._call(lambda: mcp.states(named)):
        shell.say(f"{name}  {'allowed' if allowed else 'not allowed yet: /tools allow ' + name}")


@command("new", "Start a new conversation.")
def _new(shell: Shell, rest: str) -> None:
    shell.conversation = None
    shell.say("New conversation.")


@command("switch", "Go on with another conversation: /switch ID.", "conversation")
def _switch(shell: Shell, rest: str) -> None:
    if not rest:
        raise click.UsageError("/switch ID (Tab completes ids)")
    conversation = shell.client.conversations.get(rest, user=shell.user)
    shell.conversation = conversation.id
    shell.bot, shell.model = shell.find_bot(conversation.bot), None
    shell.say(f"Switched to {conversation.id}: {conversation.title or '(untitled)'}")


@command("list", "List your conversations, newest first.")
def _list(shell: Shell, rest: str) -> None:
    found = shell.client.conversations.list(limit=20, user=shell.user)
    costs = [money(c.cost, c.unpriced) for c in found]
    width = max(map(len, costs), default=0)  # a column: "+ 3 unpriced" makes it wider
    for c, cost in zip(found, costs, strict=True):
        mark = "*" if c.id == shell.conversation else " "
        shell.say(f"{mark} {c.id}  {cost:>{width}s}  {c.title or '(untitled)'}")


@command("history", "Show this conversation's messages.")
def _history(shell: Shell, rest: str) -> None:
    from chinwag.attachments import shown

    for m in shell.client.conversations.history(shell.need_conversation(), user=shell.user):
        note = "" if m.status == "complete" else f" [{m.status}]"
        shell.say(f"{m.role}{note}: {m.content}")
        if m.attachments:
            shell.say(f"  attached: {shown(m.attachments)}")


@command("title", "Show the title, or write one now: /title new.")
def _title(shell: Shell, rest: str) -> None:
    cid = shell.need_conversation()
    if rest == "new":
        shell.say(shell.client.conversations.generate_title(cid, user=shell.user).title or "")
    else:
        shell.say(shell.client.conversations.get(cid, user=shell.user).title or "(untitled)")


@command("rename", "Rename this conversation: /rename TITLE.")
def _rename(shell: Shell, rest: str) -> None:
    if not rest:
        raise click.UsageError("/rename TITLE")
    shell.client.conversations.rename(shell.need_conversation(), rest, user=shell.user)
    shell.say(f"Renamed: {rest}")


@command("delete", "Delete this conversation, or /delete ID.", "conversation")
def _delete(shell: Shell, rest: str) -> None:
    cid = rest or shell.need_conversation()
    shell.client.conversations.delete(cid, user=shell.user)
    if cid == shell.conversation:
        shell.conversation = None
    shell.say(f"Deleted {cid}.")


@command("retry", "Answer the last question again (a new branch).")
def _retry(shell: Shell, rest: str) -> None:
    options = shell.options()
    cid = options.pop("conversation") or shell.need_conversation()
    shell.show(shell.client.conversations.retry(cid, **options))


@command("edit", "Ask TEXT instead of your last question (a new branch): /edit TEXT.")
def _edit(shell: Shell, rest: str) -> None:
    if not rest:
        raise click.UsageError("/edit TEXT")
    history = shell.client.conversations.history(shell.need_conversation(), user=shell.user)
    last = next((m for m in reversed(history) if m.role == "user"), None)
    if last is None:
        raise click.UsageError("there is no question to edit yet")
    options = shell.options()
    options.pop("conversation")
    shell.show(shell.client.conversations.edit(last.id, rest, **options, **shell.attached()))
    shell.files = []


@command("attach", "Attach files to your next question: /attach FILE... (/attach off).", "file")
def _attach(shell: Shell, rest: str) -> None:
    import os
    import shlex

    if rest == "off":
        shell.files = []
        shell.say("No files attached.")
        return
    try:
        paths = shlex.split(rest)
    except ValueError as exc:
        raise click.UsageError(f"/attach FILE... ({exc}; quote names with spaces)") from None
    for path in paths:
        found = os.path.expanduser(path)
        if os.path.isdir(found):
            raise click.UsageError(f"{path} is a folder: attach the files in it, one by one")
        if not os.path.exists(found):
            raise click.UsageError(f"no file {path}")
    if paths:  # what cannot be sent is said now, not when the question goes
        from chinwag.attachments import load_all
        from chinwag.errors import InputError

        try:
            load_all([[*shell.files, *paths]], shell.client.config.settings.attachments)
        except InputError as exc:
            raise click.UsageError(str(exc).rstrip(".")) from None
    shell.files += paths
    if not shell.files:
        shell.say("No files attached: /attach FILE... adds some to your next question.")
    for path in shell.files:
        shell.say(f"attached: {path}")
    if paths:
        shell.say("They go with your next question (/attach off drops them).")


@command("bot", "Talk to another bot: /bot SLUG.", "bot")
def _bot(shell: Shell, rest: str) -> None:
    if not rest:
        shell.say(f"{shell.bot.slug}: {shell.bot.name}")
        return
    shell.bot, shell.model = shell.find_bot(rest), None
    shell.say(f"Now talking to {shell.bot.name}.")


@command("bots", "List the bots.")
def _bots(shell: Shell, rest: str) -> None:
    for bot in shell.client.bots.list(user=shell.user):
        mark = "*" if bot.uid == shell.bot.uid else " "
        shell.say(f"{mark} {bot.slug:20s} {bot.name}")


@command("system", "Set the system prompt for this session: /system TEXT (/system off).")
def _system(shell: Shell, rest: str) -> None:
    if not rest:
        shell.say(shell.system or "(the bot's, the model's or the config's)")
        return
    shell.system = None if rest == "off" else rest
    shell.say("System prompt set." if shell.system else "System prompt cleared.")


@command("model", "Use another model with this bot for this session: /model NAME.")
def _model(shell: Shell, rest: str) -> None:
    if not rest:
        shell.say(shell.model or shell.bot.model or "(the provider's default)")
        return
    shell.model = rest
    shell.say(f"Model: {rest}")


@command("stats", "Today's usage.")
def _stats(shell: Shell, rest: str) -> None:
    day = shell.client.stats.day(user=shell.user)
    shell.say(
        f"today: {day.requests} requests, {day.prompt_tokens} tokens in, "
        f"{day.completion_tokens} out, {day.prompt_words} words in, {day.completion_words} out, "
        f"cost {money(day.cost, day.unpriced)}"
    )


@command("config", "Show a setting: /config KEY.")
def _config(shell: Shell, rest: str) -> None:
    import json

    if not rest:
        raise click.UsageError("/config KEY, e.g. /config providers.local.n_ctx")
    shell.client.config.get(rest)
    shell.say(json.dumps(shell.client.config.get_shown(rest)))


@command("template", "Send a template: /template NAME [VAR=VALUE ...].")
def _template(shell: Shell, rest: str) -> None:
    import shlex

    from chinwag.cli.options import parse_variables

    if not rest:
        for t in shell.client.templates.list():
            shell.say(f"{t.name:20s} {t.description}")
        return
    name, *pairs = shlex.split(rest)
    from chinwag.templates import turn_options

    rendered = shell.client.templates.render(name, parse_variables(pairs))
    # What the shell was told by hand (/system) wins over the template, as everywhere.
    shell.send(rendered.prompt, **turn_options(rendered, {"system": shell.system}))


@command("exit", "Leave the shell (or Ctrl-D).")
def _exit(shell: Shell, rest: str) -> bool:
    return True


@click.command()
@click.option("-b", "--bot", help="The bot to talk to (slug, uid or name).")
@click.option("-c", "--continue", "continue_", is_flag=True, help="Go on with the latest one.")
@click.option("--conversation", metavar="ID", help="Go on with this conversation.")
@click.option("--user", help="Whose conversations (default: the local user).")
@click.pass_context
def chat(
    ctx: click.Context,
    bot: str | None,
    continue_: bool,
    conversation: str | None,
    user: str | None,
) -> None:
    """An interactive chat: Markdown as it streams, /help for commands, Ctrl-D to leave."""
    client = client_from(ctx)
    if continue_ and conversation is None:
        latest = client.conversations.latest(user=user)
        conversation = latest.id if latest else None
    if conversation is not None and bot is None:
        bot = client.conversations.get(conversation, user=user).bot
    Shell(client, bot=bot, conversation=conversation, user=user).run()


__all__ = ["COMMANDS", "Shell", "chat"]
