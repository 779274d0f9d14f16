"""The data chinwag hands to users: messages, bots, conversations, replies, usage and events."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

Role = Literal["system", "user", "assistant", "tool"]
Status = Literal["complete", "partial", "error"]


class _Model(BaseModel):
    # Built on first use: many models (statistics, keys, users) are never used by a
    # program, and building them all cost `import chinwag.types` tens of ms.
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class Usage(_Model):
    """Tokens and words in (the prompt sent) and out (the answer) for one turn."""

    prompt_tokens: int = Field(default=0, ge=0)
    completion_tokens: int = Field(default=0, ge=0)
    prompt_words: int = Field(default=0, ge=0)
    completion_words: int = Field(default=0, ge=0)
    estimated: bool = False  # True when the provider reported no token counts
    # US dollars, from the config's models.<name>.price or genai-prices' table; None when
    # the model's price is unknown (never 0 for unknown). Bounded, as an edited export's
    # could otherwise be anything: a turn that cost over a million dollars is not one.
    cost: float | None = Field(default=None, ge=0, le=1_000_000, allow_inf_nan=False)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class GenerationParams(_Model):
    """Sampling settings sent with a request; None means the provider's default."""

    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, gt=0)
    top_p: float | None = Field(default=None, gt=0, le=1)
    top_k: int | None = Field(default=None, gt=0)
    stop: list[str] | None = None
    seed: int | None = None

    def merged(self, **overrides: Any) -> GenerationParams:
        """These params with the non-None overrides applied, validated."""
        changes = {k: v for k, v in overrides.items() if v is not None}
        if not changes:
            return self
        return GenerationParams.model_validate({**self.model_dump(), **changes})


class Bot(_Model):
    """A named, saved configuration of provider, model, system prompt and parameters."""

    uid: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
    slug: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    provider: str | None = None  # None: the configured default provider
    # None: the provider's configured default model; at most what the store's column holds.
    model: str | None = Field(default=None, max_length=200)
    system_prompt: str | None = None
    params: GenerationParams = Field(default_factory=GenerationParams)
    tools: list[str] = []
    search: bool = False
    welcome_message: str | None = None
    avatar_url: str | None = None

    @field_validator("name")
    @classmethod
    def _printable(cls, name: str) -> str:
        if not name.strip() or not name.isprintable():
            raise ValueError("a name needs visible, printable characters")
        return name


# The image types chinwag sends as image parts (what OpenAI-compatible models take).
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})


class Attachment(_Model):
    """A file attached to a message: text that went into the prompt under its name, or an
    image sent as an image part. Stored once per content (its sha256), whoever attached it;
    `conversations.attachment(sha256)` gives the bytes back."""

    name: str
    media_type: str
    size: int  # bytes
    sha256: str

    @property
    def image(self) -> bool:
        return self.media_type in IMAGE_TYPES


class Message(_Model):
    """One stored message; messages form a tree through parent_id."""

    id: str
    conversation_id: str
    parent_id: str | None
    role: Role
    content: str
    status: Status = "complete"
    model: str | None = None
    usage: Usage | None = None
    error: str | None = None
    meta: dict[str, Any] = {}  # the options the turn was asked with (language, search...)
    created_at: datetime
    attachments: list[Attachment] = []  # the files attached to a question, in order


class Conversation(_Model):
    """A user's thread with a bot."""

    id: str
    title: str | None
    bot: str  # the bot's uid
    user: str
    system_prompt: str | None = None
    created_at: datetime
    updated_at: datetime
    # What its answers cost, every branch, in US dollars: the priced ones' sum (0 before
    # any answer), None when none had a known price; `unpriced` counts the others.
    cost: float | None = 0.0
    unpriced: int = 0


class Source(_Model):
    """A web page a search found, as given to the model."""

    title: str
    url: str
    snippet: str = ""


class ToolCall(_Model):
    """The model asks for a tool: its name and its arguments, as the JSON text it wrote."""

    id: str
    name: str
    arguments: str


class Reply(_Model):
    """The outcome of one turn."""

    text: str
    conversation_id: str
    message_id: str | None  # None only on StoreError.partial: the answer could not be stored
    bot: str
    provider: str
    model: str
    usage: Usage
    status: Status = "complete"
    finish_reason: str | None = None
    trimmed_messages: int = 0  # history messages left out to fit the context window
    sources: list[Source] = []  # what a web search put into the context
    # Another turn moved the conversation on meanwhile (two askers at once), so this
    # exchange was stored on a branch of its own; `history` shows the other one.
    branched: bool = False
    # Calls of tools the caller runs itself (tool_schemas=): finish_reason "tool_calls".
    tool_calls: list[ToolCall] = []

    def __str__(self) -> str:
        return self.text


# The usage counters, as the daily rollup stores them and statistics report them.
USAGE_COUNTERS = (
    "requests",
    "errors",
    "prompt_tokens",
    "completion_tokens",
    "prompt_words",
    "completion_words",
    "unpriced",
)


class _Counts(_Model):
    requests: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    prompt_words: int = 0
    completion_words: int = 0
    # Requests whose model had no known price: `cost` adds up the others only, and is
    # None when every request was unpriced (0.0 with no requests: nothing was spent).
    unpriced: int = 0
    cost: float | None = 0.0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def total_words(self) -> int:
        return self.prompt_words + self.completion_words


class StatisticItem(_Counts):
    """One day's usage."""

    date: date


class StatisticTotal(_Counts):
    """Usage added up over a range of days."""

    start_date: date
    end_date: date


class Statistics(_Model):
    """Usage over a range: the total, and one item per day (days without use count zero)."""

    total: StatisticTotal
    items: list[StatisticItem]


class ComponentHealth(_Model):
    """Whether one part (the store, a provider) is reachable, and how fast it answered."""

    name: str
    ok: bool
    latency_ms: float | None
    detail: str


class Health(_Model):
    """What `client.health()` reports: the default provider, why, and what is reachable."""

    ok: bool
    default_provider: str
    reason: str
    store: ComponentHealth
    providers: list[ComponentHealth]
    broken_bots: list[ComponentHealth] = []  # bot files that cannot be used, and why
    broken_plugins: list[ComponentHealth] = []  # plugins that failed to load, and why
    mcp: list[ComponentHealth] = []  # the configured MCP servers, started to be checked
    server: str | None = None  # the chinwag server a remote client talks to; None: in-process


class User(_Model):
    """A user of a store: the owner of conversations, bots, usage and API keys."""

    name: str
    admin: bool = False
    created_at: datetime


class ApiKey(_Model):
    """An API key of a chinwag server, as listed: never the key itself, only its prefix."""

    id: str
    user: str
    name: str | None = None
    prefix: str  # the key's first characters, to tell which one it is
    rpm: int | None = None  # requests per minute; None: no limit
    tpm: int | None = None  # tokens per minute
    tokens_per_day: int | None = None
    cost_per_day: float | None = None  # a money budget, US dollars a day (UTC)
    cost_per_month: float | None = None  # US dollars a calendar month (UTC)
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    created_at: datetime

    @property
    def active(self) -> bool:
        now = datetime.now(UTC)
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class NewKey(ApiKey):
    """A key just created: `key` is the secret, shown this once and never stored."""

    key: str = Field(repr=False)


# Events of a turn. Text deltas are the hot path: plain frozen models, no nested validation.


class TextDelta(_Model):
    type: Literal["text"] = "text"
    text: str


class UsageEvent(_Model):
    type: Literal["usage"] = "usage"
    usage: Usage


class ToolCallEvent(_Model):
    type: Literal["tool_call"] = "tool_call"
    call: ToolCall


class ToolResultEvent(_Model):
    """A tool's answer (or its error, sent back to the model all the same)."""

    type: Literal["tool_result"] = "tool_result"
    id: str
    name: str
    content: str
    error: bool = False


class SearchEvent(_Model):
    """A step of the turn's web search: started, found results, or failed."""

    type: Literal["search"] = "search"
    step: Literal["searching", "results", "failed"]
    query: str
    results: list[Source] = []
    error: str | None = None


class Done(_Model):
    type: Literal["done"] = "done"
    reply: Reply


class ErrorEvent(_Model):
    """The turn failed after its question was stored: what went wrong, as data that can
    cross a process (the server sends it as SSE), and the answer as it was stored."""

    type: Literal["error"] = "error"
    message: str
    kind: str  # the chinwag error class, e.g. "RateLimitError"
    status_code: int | None = None  # the provider's HTTP status, if it sent one
    retry_after: float | None = None  # seconds a rate-limited provider asked to wait
    reply: Reply | None = None  # partial or error, as stored (message_id None: unstored)
    _error: Exception | None = PrivateAttr(default=None)  # in-process: the original

    @classmethod
    def of(cls, error: Exception, reply: Reply | None) -> ErrorEvent:
        event = cls(
            message=str(error),
            kind=type(error).__name__,
            status_code=getattr(error, "status_code", None),
            retry_after=getattr(error, "retry_after", None),
            reply=reply,
        )
        event._error = error
        return event

    @property
    def original(self) -> Exception | None:
        """The exception itself, when the event was made in this process."""
        return self._error


Event = TextDelta | UsageEvent | SearchEvent | ToolCallEvent | ToolResultEvent | Done | ErrorEvent
