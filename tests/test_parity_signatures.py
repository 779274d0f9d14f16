"""The sync Client has exactly the API of AsyncClient: same names, parameters and return
types (modulo awaiting), plus `wait=` where a call can return a Future."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

import chinwag
from chinwag.client import sync

# The sub-APIs, as AsyncClient and Client name them.
PAIRS = [
    (chinwag.AsyncClient, chinwag.Client),
    (chinwag.conversations.Conversations, sync.Conversations),
    (chinwag.bots.Bots, sync.Bots),
    (chinwag.stats.Stats, sync.Stats),
    (chinwag.templates.Templates, sync.Templates),
    (chinwag.workflows.Workflows, sync.Workflows),
    (chinwag.accounts.Accounts, sync.Accounts),
]
# Only in one of the two, on purpose.
ASYNC_ONLY = {"aclose"}
SYNC_ONLY = {"close"}


def _public(cls: type) -> dict[str, Any]:
    return {
        name: member
        for name, member in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_")
    }


def _shape(function: Any) -> list[tuple[str, Any, Any]]:
    """Parameters (name, kind, default) without `self`, and without the sync-only `wait`."""
    params = list(inspect.signature(function).parameters.values())[1:]
    return [(p.name, p.kind, p.default) for p in params if p.name != "wait"]


def _returns(function: Any) -> set[str]:
    """The return annotation's parts, as written, without Futures (wait=False's) and with
    the sync Stream read as the AsyncStream it faces."""
    written = str(inspect.signature(function).return_annotation).replace("builtins.", "")
    parts = {part.strip() for part in written.split("|")}
    return {p.replace("Stream", "AsyncStream").replace("AsyncAsync", "Async")
            for p in parts if not p.startswith("Future[")}  # fmt: skip


@pytest.mark.parametrize(("async_cls", "sync_cls"), PAIRS, ids=lambda c: c.__qualname__)
def test_every_public_method_exists_in_both_with_the_same_parameters(
    async_cls: type, sync_cls: type
) -> None:
    async_api, sync_api = _public(async_cls), _public(sync_cls)
    assert set(async_api) - ASYNC_ONLY == set(sync_api) - SYNC_ONLY
    for name in set(async_api) & set(sync_api):
        assert _shape(async_api[name]) == _shape(sync_api[name]), name


@pytest.mark.parametrize(("async_cls", "sync_cls"), PAIRS, ids=lambda c: c.__qualname__)
def test_return_types_match_modulo_awaiting(async_cls: type, sync_cls: type) -> None:
    async_api, sync_api = _public(async_cls), _public(sync_cls)
    for name in set(async_api) & set(sync_api):
        assert _returns(async_api[name]) == _returns(sync_api[name]), name


# The in-process sub-APIs and chinwag.remote's, which stand in for them over HTTP.
PLACES = [
    (chinwag.conversations.Conversations, "Conversations"),
    (chinwag.bots.Bots, "Bots"),
    (chinwag.stats.Stats, "Stats"),
    (chinwag.accounts.Accounts, "Accounts"),
]


@pytest.mark.parametrize(("local", "name"), PLACES, ids=lambda c: getattr(c, "__qualname__", c))
def test_the_remote_sub_apis_have_the_in_process_api(local: type, name: str) -> None:
    from chinwag.remote import apis

    remote = getattr(apis, name)
    local_api, remote_api = _public(local), _public(remote)
    assert set(local_api) == set(remote_api)
    for method in local_api:
        assert _shape(local_api[method]) == _shape(remote_api[method]), method
        assert inspect.iscoroutinefunction(remote_api[method]) == inspect.iscoroutinefunction(
            local_api[method]
        ), method
        assert _returns(local_api[method]) == _returns(remote_api[method]), method


def test_the_remote_backend_turns_like_the_engine() -> None:
    from chinwag.engine import Engine
    from chinwag.remote import Remote

    for method in ("turn", "health", "models", "settle", "aclose"):
        local, remote = getattr(Engine, method), getattr(Remote, method)
        assert _shape(local) == _shape(remote), method
