"""The client's second place: a chinwag server, over its /api/v1.

`Remote` stands where the engine stands in-process (turns, health, models), and
`chinwag.remote.apis` holds the sub-APIs over HTTP, so AsyncClient and Client have the
same methods, arguments, return types and errors in both places. Checks that need no
store run here exactly as in-process (chinwag.plan.request); the rest is the server's.
"""

from __future__ import annotations

import base64
import ssl
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from chinwag import attachments, checks, plan as planning
from chinwag.bots import bot_key
from chinwag.config import Config
from chinwag.errors import AccessError, ChinwagError, InputError, PermissionDeniedError
from chinwag.remote.transport import Transport, segment
from chinwag.types import ComponentHealth, Done, Event, Health, Reply


class Me(BaseModel):
    """Who the key acts as, as the server says (asked once)."""

    user: str
    admin: bool = False
    default_bot: str = "default"


class PublicHealth(BaseModel):
    ok: bool
    version: str = "?"


class _Model(BaseModel):
    id: str


class ModelList(BaseModel):
    data: list[_Model]


class Remote:
    """Turns, health and models from a chinwag server, for one key."""

    def __init__(
        self, config: Config, url: str, api_key: str | None, *, verify: ssl.SSLContext | bool = True
    ) -> None:
        self.config = config
        self.http = Transport(url, api_key, config.settings.server, verify=verify)
        self._me: Me | None = None
        # set_system_prompt's, sent with every turn: the server applies the one for the
        # model it answers with, where in-process the config's would be.
        self._model_prompts: dict[str, str | None] = {}

    async def me(self) -> Me:
        if self._me is None:
            self._me = await self.http.request("GET", "/me", Me)
        return self._me

    async def as_user(self, user: Any) -> None:
        """A server key acts as its own user: `user=` may name only that one."""
        name = checks.user(user)
        if name is None:
            return
        me = await self.me()
        if name != me.user:
            raise PermissionDeniedError(
                f"This client acts as its server key's user {me.user!r}; user={name!r} is "
                "another user. Make a key for that user (chinwag keys create --user ...)."
            )

    async def turn(
        self,
        prompt: str | None = None,
        *,
        messages: Sequence[Mapping[str, Any]] | None = None,
        stream: bool = True,
        retry: bool = False,
        edit: str | None = None,
        **options: Any,
    ) -> AsyncIterator[Event]:
        """One turn on the server: its events as they come, or its Reply as one Done."""
        keep = checks.flag(options.pop("keep", None), "keep")
        request = planning.request(
            prompt, messages, stream=stream, retry=retry, edit=edit, options=options
        )
        if keep is False:
            raise InputError("keep=False is for the server's own /v1 API, not a remote client.")
        body = dict(request.options)
        await self.as_user(body.pop("user", None))
        if body.pop("admit", None) is not None:
            raise InputError("admit= is a server's own hook for its keys' limits; a remote "
                             "client's key is counted on the server.")  # fmt: skip
        for local in ("tools", "tool_schemas", "tool_choice"):
            if body.pop(local, None) is not None:
                raise InputError(
                    f"{local}= runs functions in this process; against a chinwag server, "
                    "use a bot with the server's tools (a bot's tools: list)."
                )
        if body.get("bot") is not None:
            body["bot"] = bot_key(body["bot"])
        if body.get("files"):  # read here, where the paths are, and checked before sending
            limits = self.config.settings.attachments
            (read,) = await attachments.load([body["files"]], limits)
            body["files"] = [
                {"name": u.info.name, "data": base64.b64encode(u.data).decode()} for u in read
            ]
        if self._model_prompts:
            body["model_prompts"] = {**self._model_prompts, **(body.get("model_prompts") or {})}
        conversation = body.pop("conversation", None)
        if retry:
            path = f"/conversations/{segment(conversation, 'conversation')}/retry"
        elif edit is not None:
            path, body["text"] = f"/messages/{segment(edit, 'message_id')}/edit", request.prompt
        elif messages is not None:
            path, body["messages"] = "/chat", [dict(m) for m in messages]
            body["conversation"] = conversation
        elif conversation is not None:
            cid = segment(conversation, "conversation")
            path, body["prompt"] = f"/conversations/{cid}/messages", request.prompt
        else:
            path, body["prompt"] = "/chat", request.prompt
        if stream:
            async for event in self.http.events(path, {**body, "stream": True}):
                yield event
            return
        yield Done(reply=await self.http.request("POST", path, Reply, json_body=body))

    async def health(self) -> Health:
        """The server's full report for an admin key; for others, whether it answers."""
        started = time.perf_counter()
        try:
            report = await self.http.request("GET", "/health/details", Health)
        except PermissionDeniedError:
            public = await self.http.request("GET", "/health", PublicHealth)
            latency = (time.perf_counter() - started) * 1000
            server = ComponentHealth(
                name="server", ok=public.ok, latency_ms=round(latency, 2),
                detail=f"chinwag {public.version} at {self.http.shown_url}",
            )  # fmt: skip
            return Health(
                ok=server.ok, default_provider="(the server's)",
                reason="the server chooses; only an admin key sees its providers",
                store=server, providers=[], server=self.http.shown_url,
            )  # fmt: skip
        except ChinwagError as exc:
            latency = (time.perf_counter() - started) * 1000
            down = ComponentHealth(
                name="server", ok=False, latency_ms=round(latency, 2), detail=str(exc)
            )
            why = "refused the key" if isinstance(exc, AccessError) else "did not answer"
            return Health(
                ok=False, default_provider="(unknown)", reason=f"the server {why}: {exc}",
                store=down, providers=[], server=self.http.shown_url,
            )  # fmt: skip
        return report.model_copy(update={"server": self.http.shown_url})

    def set_system_prompt(self, model: str, prompt: str | None) -> None:
        """A per-model system prompt of this client's, for the turns it sends from now on."""
        self._model_prompts[model] = prompt

    async def models(self, provider: str | None = None) -> list[str]:
        """The model ids the server offers (its bots' slugs, and provider/model); with
        `provider`, that provider's models."""
        listed = await self.http.request("GET", self.http.url + "/v1/models", ModelList)
        ids = [m.id for m in listed.data]
        if provider is None:
            return ids
        prefix = checks.key(provider, "provider") + "/"
        return [i.removeprefix(prefix) for i in ids if i.startswith(prefix)]

    async def settle(self, within: float = 30.0) -> None:
        """Background work (titles) runs on the server: nothing to wait for here."""

    async def aclose(self, grace: float = 30.0) -> None:
        await self.http.aclose()


__all__ = ["Remote"]
