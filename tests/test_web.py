"""The web page in a real browser (Debian's chromium through Playwright), against a real
`chinwag serve` on 127.0.0.1 with the fake OpenAI server behind it."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Response, expect

from tests.browser import AXE, Site, chromium, context, send, sign_in, site, wait_idle
from tests.fake_openai import FakeOpenAI, Script


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def web(_fake_server: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """One server for the module: alice and bob, each with a key."""
    with site(tmp_path_factory.mktemp("web") / "home", _fake_server, ("alice", "bob")) as s:
        yield s


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the screenshots of the main screens go."""
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture
def ctx(browser: Browser) -> Iterator[BrowserContext]:
    made = context(browser, viewport={"width": 1200, "height": 800})
    yield made
    made.close()


@pytest.fixture
def page(ctx: BrowserContext, web: Site, server: FakeOpenAI) -> Page:
    """A page signed in as alice (the fake provider reset)."""
    opened = ctx.new_page()
    sign_in(opened, web.base, web.keys["alice"])
    return opened


def api(web: Site, user: str = "alice") -> httpx.Client:
    return httpx.Client(
        base_url=f"{web.base}/api/v1",
        headers={"authorization": f"Bearer {web.keys[user]}"},
        timeout=30,
    )


def answers(page: Page) -> list[str]:
    return page.locator(".message.assistant:not(.welcome) .bubble").all_inner_texts()


def conversation_id(page: Page) -> str:
    found = re.search(r"[?&]c=([0-9a-f]+)", page.url)
    assert found, page.url
    return found.group(1)


# -- signing in ---------------------------------------------------------------------------


def test_sign_in_gives_a_strict_cookie_and_sign_out_ends_the_session_server_side(
    ctx: BrowserContext, web: Site, server: FakeOpenAI, shots: Path
) -> None:
    page = ctx.new_page()
    page.goto(f"{web.base}/")
    page.wait_for_url(f"{web.base}/signin")
    page.screenshot(path=shots / "signin.png")
    page.get_by_label("API key").fill("cw-not-a-key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not valid")
    page.get_by_label("API key").fill(web.keys["alice"])
    page.get_by_label("API key").press("Enter")
    page.wait_for_url(f"{web.base}/")
    expect(page.locator(".who")).to_have_text("alice")
    cookies = {c["name"]: c for c in ctx.cookies()}
    session = cookies["chinwag_session"]
    assert session["httpOnly"] is True
    assert session["sameSite"] == "Strict"
    assert session["secure"] is False  # plain http on loopback
    assert cookies["chinwag_csrf"]["httpOnly"] is False  # the script sends it back
    assert page.evaluate("document.cookie").count("chinwag_session") == 0
    # The store keeps the session's hash only.
    db = sqlite3.connect(web.home / "chinwag.db")
    try:
        rows = db.execute("SELECT * FROM web_sessions").fetchall()
    finally:
        db.close()
    assert rows
    assert not any(session["value"] in str(v) for row in rows for v in row)
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{web.base}/signin")
    # The old cookie, replayed, is refused: the session ended in the store, not just here.
    replay = httpx.get(
        f"{web.base}/api/v1/conversations", cookies={"chinwag_session": session["value"]}
    )
    assert replay.status_code == 401
    assert "sign in again" in replay.json()["error"]["message"]
    page.goto(f"{web.base}/")
    page.wait_for_url(f"{web.base}/signin")


def test_a_server_without_keys_opens_the_page_for_its_owner_and_titles_arrive(
    browser: Browser, server: FakeOpenAI, tmp_path: Path
) -> None:
    with site(tmp_path / "owner", server, CHINWAG_TITLES="model") as owner:
        made = context(browser)
        try:
            page = made.new_page()
            page.goto(f"{owner.base}/")
            expect(page.get_by_role("button", name="New chat")).to_be_visible()
            expect(page.locator(".who")).to_have_text("local")
            expect(page.get_by_role("button", name="Sign out")).to_have_count(0)
            server.script(Script(text="Tea is a drink."), Script(text="All About Tea"))
            send(page, "What is tea?")
            expect(page.locator(".message.assistant .bubble")).to_have_text("Tea is a drink.")
            # The title is written in the background, after the answer; the list shows it.
            expect(page.locator("#conversations a")).to_have_text(["All About Tea"])
            expect(page.locator("#chat-title")).to_have_text("All About Tea")
            assert page.url.startswith(f"{owner.base}/?c=")
            page.goto(f"{owner.base}/signin")  # nothing to sign in to
            page.wait_for_url(f"{owner.base}/")
        finally:
            made.close()


# -- chatting -----------------------------------------------------------------------------


def test_the_answer_streams_in_as_markdown_with_highlighted_code_and_a_copy_button(
    page: Page, server: FakeOpenAI, web: Site, shots: Path
) -> None:
    answer = (
        "Here is **bold** and a list:\n\n- one\n- two\n\n"
        "```python\ndef greet(name):\n    return f'hi {name}'\n```\n\nThat is all."
    )
    server.script(Script(chunks=[answer[i : i + 6] for i in range(0, len(answer), 6)],
                         chunk_delay=0.04))  # fmt: skip
    box = page.get_by_label("Message", exact=True)
    box.fill("first line")
    box.press("Shift+Enter")
    box.type("second line")
    assert box.input_value() == "first line\nsecond line"  # Shift+Enter: a new line, not sent
    assert server.requests == []
    box.press("Enter")
    expect(box).to_have_value("")
    # While it streams: Stop is offered, and the first blocks are there before the end.
    expect(page.get_by_role("button", name="Stop")).to_be_visible()
    expect(page.locator(".message.assistant strong")).to_have_text("bold")
    assert page.get_by_role("button", name="Stop").is_visible()
    wait_idle(page)
    bubble = page.locator(".message.assistant .bubble")
    expect(bubble.locator("li")).to_have_text(["one", "two"])
    expect(bubble.locator("pre code .hljs-keyword")).to_have_text(["def", "return"])
    expect(bubble).to_contain_text("That is all.")
    assert page.locator(".message.user .bubble").inner_text() == "first line\nsecond line"
    page.get_by_role("button", name="Copy the code").click()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == "def greet(name):\n    return f'hi {name}'\n"
    with api(web) as client:  # a title, as a model would write it, for the picture
        client.patch(
            f"/conversations/{conversation_id(page)}", json={"title": "Greeting in Python"}
        )
    page.reload()
    expect(page.locator("#chat-title")).to_have_text("Greeting in Python")
    page.screenshot(path=shots / "chat.png")  # docs/web.png is a copy


def test_stop_keeps_the_partial_answer_and_the_server_stores_it_as_partial(
    page: Page, server: FakeOpenAI, web: Site
) -> None:
    server.script(Script(chunks=[f"word{i} " for i in range(400)], chunk_delay=0.03))
    send(page, "Talk for a long time")
    expect(page.locator(".message.assistant .bubble")).to_contain_text("word5")
    page.get_by_role("button", name="Stop").click()
    wait_idle(page)
    expect(page.locator(".message.assistant .status")).to_contain_text("Partial answer")
    shown = answers(page)[0]
    assert "word5" in shown
    assert "word399" not in shown
    with api(web) as client:
        stored = client.get(f"/conversations/{conversation_id(page)}/messages").json()
    assert [m["role"] for m in stored] == ["user", "assistant"]
    assert stored[1]["status"] == "partial"
    assert stored[1]["content"].startswith("word0 word1 word2 word3 word4 word5")
    assert page.get_by_label("Message", exact=True).evaluate("e => e === document.activeElement")


def test_retry_and_edit_make_branches_the_page_walks_between(
    page: Page, server: FakeOpenAI, web: Site
) -> None:
    server.script(Script(text="First answer."), Script(text="Second answer."))
    send(page, "Tell me something")
    expect(page.locator(".message.assistant .bubble")).to_have_text("First answer.")
    page.get_by_role("button", name="Retry").click()
    expect(page.locator(".message.assistant .bubble")).to_have_text("Second answer.")
    versions = page.locator(".message.assistant .versions")
    expect(versions.locator(".count")).to_have_text("2/2")
    versions.get_by_role("button", name="Previous version").click()
    expect(page.locator(".message.assistant .bubble")).to_have_text("First answer.")
    expect(versions.locator(".count")).to_have_text("1/2")
    page.reload()  # the branch shown is the conversation's current one, in the store
    expect(page.locator(".message.assistant .bubble")).to_have_text("First answer.")
    # Editing the question: a branch from there, streamed; the old question stays.
    server.script(Script(text="Answer to the edit."))
    page.locator(".message.user").get_by_role("button", name="Edit").click()
    edited = page.get_by_label("Edited message")
    edited.fill("Tell me something else")
    page.get_by_role("button", name="Save and send").click()
    expect(page.locator(".message.assistant .bubble")).to_have_text("Answer to the edit.")
    expect(page.locator(".message.user .bubble")).to_have_text("Tell me something else")
    asked = page.locator(".message.user .versions")
    expect(asked.locator(".count")).to_have_text("2/2")
    asked.get_by_role("button", name="Previous version").click()
    expect(page.locator(".message.user .bubble")).to_have_text("Tell me something")
    # Back on the old question, the newest answer below it is shown, its versions beside it.
    expect(page.locator(".message.assistant .bubble")).to_have_text("Second answer.")
    expect(versions.locator(".count")).to_have_text("2/2")
    assert [r["messages"][-1]["content"] for r in server.requests] == [
        "Tell me something", "Tell me something", "Tell me something else",
    ]  # fmt: skip


def test_the_sidebar_lists_newest_first_searches_renames_exports_and_deletes(
    page: Page, server: FakeOpenAI, web: Site, tmp_path: Path
) -> None:
    with api(web) as client:
        for title in ("Gardening notes", "Cooking with lentils"):
            made = client.post("/conversations", json={"title": title}).json()
            client.post(f"/conversations/{made['id']}/messages", json={"prompt": title.lower()})
    page.reload()
    listed = page.locator("#conversations a")
    expect(listed.first).to_have_text("Cooking with lentils")
    expect(listed.nth(1)).to_have_text("Gardening notes")
    page.get_by_label("Search conversations").fill("gardening")  # in the title and text
    expect(listed).to_have_text(["Gardening notes"])
    page.get_by_label("Search conversations").fill("nothing like this")
    expect(page.locator("#no-conversations")).to_contain_text("Nothing matches")
    page.get_by_label("Search conversations").fill("")
    expect(listed.first).to_have_text("Cooking with lentils")
    listed.first.click()
    expect(page.locator(".message.assistant .bubble")).to_have_text(
        "You said: cooking with lentils"
    )
    page.get_by_role("button", name="Rename").click()
    page.get_by_label("New title").fill("Lentil recipes")
    page.get_by_label("New title").press("Enter")
    expect(page.locator("#chat-title")).to_have_text("Lentil recipes")
    expect(listed.first).to_have_text("Lentil recipes")
    with page.expect_download() as markdown:
        page.get_by_role("link", name="Export Markdown").click()
    text = Path(markdown.value.path()).read_text()
    assert text.startswith("# Lentil recipes")
    assert "You said: cooking with lentils" in text
    with page.expect_download() as exported:
        page.get_by_role("link", name="Export JSON").click()
    data = json.loads(Path(exported.value.path()).read_text())
    assert data["conversation"]["title"] == "Lentil recipes"
    assert [m["role"] for m in data["messages"]] == ["user", "assistant"]
    page.once("dialog", lambda dialog: dialog.dismiss())  # asked first; no: nothing happens
    page.get_by_role("button", name="Delete").click()
    expect(listed.first).to_have_text("Lentil recipes")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete").click()
    expect(page.locator("#chat-title")).to_have_text("New chat")
    expect(page.locator("#conversations a", has_text="Lentil recipes")).to_have_count(0)
    with api(web) as client:
        titles = [c["title"] for c in client.get("/conversations").json()]
    assert "Lentil recipes" not in titles
    assert "Gardening notes" in titles


HOSTILE = """Here are some tricks.

<script>window.pwned = "script"</script>

<img src="x" onerror="window.pwned = 'img'">

[a link](javascript:window.pwned='link') and <a href="javascript:window.pwned='a'">another</a>

<iframe srcdoc="<script>parent.pwned='iframe'</script>"></iframe>

[data](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)

> <details open ontoggle="window.pwned='details'">x</details>

![img](x" onerror="window.pwned='md-img')
"""


def test_model_output_and_user_text_are_sanitized_nothing_executes(
    page: Page, server: FakeOpenAI
) -> None:
    server.script(Script(chunks=[HOSTILE[i : i + 9] for i in range(0, len(HOSTILE), 9)]))
    send(page, '<img src="y" onerror="window.pwned=\'user\'"> <script>window.pwned=1</script>')
    wait_idle(page)
    messages = page.locator("#messages")
    expect(messages).to_contain_text("Here are some tricks.")
    for link in messages.locator(".message.assistant a").all():
        link.click(modifiers=["Control"])  # nothing to run, whatever they point at
    page.wait_for_timeout(300)  # let anything that would run, run
    assert page.evaluate("window.pwned") is None
    assert messages.locator("script, iframe, object, embed, details[ontoggle]").count() == 0
    assert messages.locator("[onerror], [ontoggle], [onclick]").count() == 0
    hrefs = [a.get_attribute("href") or "" for a in messages.locator("a").all()]
    assert not any(h.lower().startswith(("javascript:", "data:")) for h in hrefs)
    # Raw HTML is shown as text, so the user sees what the model tried.
    expect(messages.locator(".message.assistant")).to_contain_text("<script>")
    expect(messages.locator(".message.user .bubble")).to_contain_text("<img src=")
    assert len(page.context.pages) == 1  # no window was opened by a javascript: link


def test_a_2000_line_answer_streams_completes_and_only_its_tail_is_rendered_again(
    page: Page, server: FakeOpenAI
) -> None:
    lines: list[str] = []
    for block in range(200):  # 10 lines each: a paragraph, a code block, blank lines
        lines += [f"Paragraph {block} starts here,", "and goes on,", "and ends.", ""]
        lines += ["```python", f"value_{block} = {block}", "```", ""]
        lines += [f"- item {block}", ""]
    text = "\n".join(lines)
    assert len(lines) == 2000
    pieces = [text[i : i + 64] for i in range(0, len(text), 64)]
    server.script(Script(chunks=pieces, chunk_delay=0.005))
    send(page, "Write a lot")
    bubble = page.locator(".message.assistant .bubble")
    expect(bubble.locator("p", has_text="Paragraph 1 starts")).to_be_visible()
    # From here on, count what happens to the finished blocks' container.
    page.evaluate(
        """() => {
        const p = document.querySelector(".message.assistant .bubble p");
        window.frozen = { parent: p.parentNode.className, added: 0, removed: 0 };
        new MutationObserver((records) => {
            for (const r of records) {
                window.frozen.added += r.addedNodes.length;
                window.frozen.removed += r.removedNodes.length;
            }
        }).observe(p.parentNode, { childList: true });
    }"""
    )
    wait_idle(page)
    expect(bubble.locator("pre code")).to_have_count(200)
    expect(bubble.locator("p")).to_have_count(200)
    expect(bubble.locator("p").last).to_contain_text("Paragraph 199")
    expect(bubble.locator("li").last).to_have_text("item 199")
    assert bubble.locator("pre code .hljs-number").count() >= 199
    frozen = page.evaluate("window.frozen")
    assert frozen["parent"] == "frozen"
    assert frozen["removed"] == 0  # a finished block, once rendered, is never rendered again
    assert frozen["added"] > 100  # blocks were frozen as they finished, not all at the end


def test_errors_appear_in_the_conversation_never_as_a_silent_stop(
    page: Page, server: FakeOpenAI, ctx: BrowserContext
) -> None:
    server.script(Script(status=429, headers={"retry-after": "7"}, error="Slow down"))
    send(page, "Are you there?")
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("Rate limited")
    expect(alert).to_contain_text("7 s")
    expect(page.locator(".message.user .bubble")).to_have_text("Are you there?")  # kept
    # The provider breaking off mid-answer: the part that came is kept, and said so.
    server.script(Script(chunks=["Half ", "an ", "answer ", "and"], cut_after=3))
    send(page, "Go on")
    expect(page.get_by_role("alert")).to_contain_text("provider")
    expect(page.locator(".message.assistant .bubble").last).to_contain_text("Half an answer")
    expect(page.locator(".message.assistant .status").last).to_be_visible()
    ctx.set_offline(True)
    try:
        send(page, "Hello?")
        expect(page.get_by_role("alert").last).to_contain_text("Lost the connection")
    finally:
        ctx.set_offline(False)
    expect(page.get_by_role("button", name="Send")).to_be_visible()


def test_the_bot_picker_welcome_message_and_system_prompt(
    page: Page, server: FakeOpenAI, web: Site
) -> None:
    with api(web) as client:
        made = client.post("/bots", json={"name": "Poet", "system_prompt": "Rhyme.",
                                          "welcome_message": "Hello, I **rhyme**."})  # fmt: skip
        assert made.status_code == 201, made.text
    page.reload()
    page.get_by_text("Bot and system prompt").click()
    page.get_by_label("Bot", exact=True).select_option(label="Poet")
    welcome = page.locator(".message.welcome")
    expect(welcome).to_contain_text("Hello, I rhyme.")
    expect(welcome.locator("strong")).to_have_text("rhyme")
    page.get_by_label("System prompt of this conversation").fill("Answer in one line.")
    server.script(Script(text="Roses are red."))
    send(page, "A poem please")
    expect(page.locator(".message.assistant .bubble")).to_have_text("Roses are red.")
    sent = server.requests[-1]["messages"]
    assert sent[0] == {"role": "system", "content": "Answer in one line."}
    page.reload()
    page.get_by_text("Bot and system prompt").click()
    expect(page.get_by_label("System prompt of this conversation")).to_have_value(
        "Answer in one line."
    )
    expect(page.get_by_label("Bot", exact=True)).to_be_disabled()
    page.get_by_label("System prompt of this conversation").fill("Two lines.")
    page.get_by_role("button", name="Save system prompt").click()
    expect(page.locator("#toast")).to_have_text("System prompt saved")
    with api(web) as client:
        stored = client.get(f"/conversations/{conversation_id(page)}").json()
    assert stored["system_prompt"] == "Two lines."
    assert stored["bot"] == made.json()["uid"]


def test_the_usage_page_draws_tokens_and_words_per_day_and_totals_per_bot(
    page: Page, server: FakeOpenAI, web: Site, shots: Path
) -> None:
    server.script(Script(text="one two three"))
    send(page, "count to three")
    # The answer on the page, not just the Send button, which is there until it starts.
    expect(page.locator(".message.assistant .bubble").last).to_have_text("one two three")
    wait_idle(page)
    with api(web) as client:
        stats = client.get("/stats/usage").json()["total"]
        default = client.get("/stats/usage?bot=default").json()["total"]
    page.get_by_role("link", name="Usage").click()
    page.wait_for_url(f"{web.base}/usage")
    tokens = page.locator("#tokens-chart svg")
    expect(tokens.locator("g.day")).to_have_count(30)
    expect(page.locator("#words-chart svg g.day")).to_have_count(30)
    expect(page.locator("#usage-total")).to_contain_text(
        f"{stats['prompt_tokens'] + stats['completion_tokens']:,} tokens"
    )
    today = tokens.locator("g.day").last
    assert today.locator("rect.out").get_attribute("height") != "0"
    row = page.locator("#per-bot tbody tr", has_text="Default")
    expect(row.locator("td").nth(2)).to_have_text(f"{default['completion_tokens']:,}")
    expect(row.locator("td").nth(0)).to_have_text(f"{default['requests']:,}")
    page.get_by_label("Period").select_option("7")
    expect(tokens.locator("g.day")).to_have_count(7)
    page.screenshot(path=shots / "usage.png", full_page=True)


def test_a_phone_width_works_with_the_list_sliding_over(
    browser: Browser, web: Site, server: FakeOpenAI, shots: Path
) -> None:
    phone = context(browser, viewport={"width": 375, "height": 740}, is_mobile=True,
                    has_touch=True, color_scheme="dark")  # fmt: skip
    try:
        page = phone.new_page()
        sign_in(page, web.base, web.keys["alice"])
        expect(page.get_by_role("navigation", name="Conversation list")).to_be_hidden()
        server.script(Script(text="A short answer for a small screen."))
        send(page, "Hi from a phone")
        expect(page.locator(".message.assistant .bubble")).to_contain_text("small screen")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375
        page.screenshot(path=shots / "phone.png")
        page.get_by_role("button", name="Show conversations").click()
        listed = page.get_by_role("navigation", name="Conversation list")
        expect(listed).to_be_visible()
        expect(page.get_by_label("Search conversations")).to_be_focused()
        page.screenshot(path=shots / "phone-list.png")
        listed.get_by_role("link").first.click()
        expect(listed).to_be_hidden()
    finally:
        phone.close()


def test_pages_load_nothing_from_outside_and_weigh_under_300_kb(
    page: Page, web: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    loaded: list[Response] = []
    page.on("response", lambda response: loaded.append(response))
    weights = {}
    for path in ("/", "/usage"):
        loaded.clear()
        page.goto(f"{web.base}{path}")
        page.wait_for_load_state("networkidle")
        urls = [r.url for r in loaded]
        assert all(u.startswith(web.base) for u in urls), urls
        html = page.content()
        refs = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert refs
        assert all(r.startswith(("/", "#", "data:")) for r in refs), (path, refs)
        weights[path] = sum(
            len(r.body())
            for r in loaded
            if r.request.resource_type in ("document", "script", "stylesheet")
        )
    for weight in weights.values():
        assert 50_000 < weight < 300_000, weights
    signin = httpx.get(f"{web.base}/signin").text  # the page for those not signed in
    refs = re.findall(r'(?:src|href)="([^"]+)"', signin)
    assert refs
    assert all(r.startswith(("/", "#", "data:")) for r in refs), refs
    with capsys.disabled():
        print(f"\npage weight (HTML+JS+CSS, uncompressed): {weights}")


def serious_violations(page: Page) -> list[str]:
    """What axe-core (vendored, run in the page) finds serious or critical."""
    page.add_script_tag(path=AXE)
    found = page.evaluate("axe.run(document).then(r => r.violations)")
    return [
        f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}"
        for v in found
        if v["impact"] in ("serious", "critical")
    ]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_nothing_serious_on_any_page(
    browser: Browser, web: Site, server: FakeOpenAI, scheme: str, shots: Path
) -> None:
    # bypass_csp: the page's own policy would (rightly) refuse the injected axe script.
    made = context(browser, bypass_csp=True, color_scheme=scheme)
    try:
        page = made.new_page()
        page.goto(f"{web.base}/signin")
        assert serious_violations(page) == []
        sign_in(page, web.base, web.keys["alice"])
        server.script(
            Script(text="Some `code` and a [link](https://example.org).\n\n```js\nlet x = 1;\n```")
        )
        send(page, "Show me")
        wait_idle(page)
        page.get_by_text("Bot and system prompt").click()
        assert serious_violations(page) == []
        page.screenshot(path=shots / f"chat-{scheme}.png")
        page.goto(f"{web.base}/usage")
        expect(page.locator("#tokens-chart svg")).to_be_visible()
        assert serious_violations(page) == []
    finally:
        made.close()


def test_keyboard_alone_reaches_everything_with_a_visible_focus(
    page: Page, server: FakeOpenAI
) -> None:
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to the message box")
    expect(skip).to_be_focused()
    outline = skip.evaluate("e => getComputedStyle(e).outlineStyle")
    assert outline not in ("none", "")
    page.keyboard.press("Enter")
    box = page.get_by_label("Message", exact=True)
    expect(box).to_be_focused()
    server.script(Script(text="Typed, sent, answered."))
    page.keyboard.type("Only the keyboard")
    page.keyboard.press("Enter")
    expect(page.locator(".message.assistant .bubble")).to_have_text("Typed, sent, answered.")
    wait_idle(page)
    expect(page.locator("#conversations a[aria-current=page]")).to_be_visible()
    expect(page.get_by_role("button", name="Retry")).to_be_enabled()
    # Every control on the way is reached by Tab, in order, and shows its focus.
    reached: list[str] = []
    page.locator("#new-chat").focus()
    for _ in range(40):
        page.keyboard.press("Tab")
        where = page.evaluate(
            "(() => { const e = document.activeElement; if (e === document.body) return null;"
            " const s = getComputedStyle(e); return (e.getAttribute('aria-label') ||"
            " e.labels?.[0]?.textContent || e.textContent || e.id).trim() + '|' +"
            " s.outlineStyle })()"
        )
        if where is None:  # past the last control
            break
        reached.append(where)
    names = [r.split("|")[0] for r in reached]
    for expected in (
        "Search conversations",
        "Usage",
        "Rename",
        "Export Markdown",
        "Delete",
        "Bot and system prompt",
        "Edit",
        "Retry",
        "Message",
        "Send",
    ):
        assert expected in names, (expected, names)  # fmt: skip
    assert names.index("Search conversations") < names.index("Rename") < names.index("Message")
    assert all(r.split("|")[1] not in ("none", "") for r in reached), "\n".join(reached)
