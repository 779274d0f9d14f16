"""A real browser for the web page's tests: Debian's chromium, driven by Playwright.

Playwright cannot download its own browser on these machines, so it drives the system's
(`apt-get install chromium`, which scripts/test does when it is missing).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from tests.conftest import Runner, chinwag_env
from tests.fake_openai import FakeOpenAI
from tests.server import chinwag_serve

CHROMIUM = os.environ.get("CHINWAG_TEST_CHROMIUM", "/usr/bin/chromium")
AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"


@contextmanager
def chromium() -> Iterator[Browser]:
    """One headless chromium (the system's), closed afterwards."""
    if not shutil.which(CHROMIUM):
        raise RuntimeError(
            f"No chromium at {CHROMIUM}: install Debian's chromium package "
            "(scripts/test does), or point CHINWAG_TEST_CHROMIUM at one."
        )
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Site:
    """A running `chinwag serve` with users and their keys."""

    base: str
    home: Path
    run: Runner
    keys: dict[str, str] = field(default_factory=dict)


@contextmanager
def site(home: Path, fake: FakeOpenAI, users: tuple[str, ...] = (), **env: str) -> Iterator[Site]:
    """A server whose users each have a key (none: a server without keys, loopback only)."""
    run = Runner(chinwag_env(home, fake, **env))
    keys = {}
    for user in users:
        added = run("users", "add", user)
        assert added.returncode == 0, added.stderr
        made = run("keys", "create", "--user", user)
        assert made.returncode == 0, made.stderr
        keys[user] = made.stdout.strip()
    with chinwag_serve(run.env) as (base, _):
        yield Site(base, home, run, keys)


def context(browser: Browser, **options: object) -> BrowserContext:
    """A fresh context (no cookies) that may use the clipboard."""
    made = browser.new_context(**options)  # type: ignore[arg-type]
    made.grant_permissions(["clipboard-read", "clipboard-write"])
    made.set_default_timeout(15_000)
    return made


def sign_in(page: Page, base: str, key: str) -> None:
    """Sign in through the page, as a person does."""
    page.goto(f"{base}/")
    page.wait_for_url(f"{base}/signin")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/")
    page.get_by_label("Message", exact=True).wait_for()


def send(page: Page, text: str) -> None:
    """Type a message and press Enter, and wait until the page shows it: the turn has
    begun (a new chat makes its conversation first), so `wait_idle` waits for its end."""
    box = page.get_by_label("Message", exact=True)
    box.fill(text)
    box.press("Enter")
    page.locator(".message.user .bubble").filter(has_text=text.strip()).last.wait_for()


def wait_idle(page: Page) -> None:
    """Until no answer is streaming (the Send button is back)."""
    page.get_by_role("button", name="Send").wait_for()
