// chinwag's web page: the chat, the usage page and signing in, over /api/v1.
// marked and DOMPurify are loaded as classic scripts before this module (window.marked,
// window.DOMPurify); highlight.js is imported as ES modules. Nothing comes from elsewhere.

import hljs from "./vendor/highlight/core.min.js";
import bash from "./vendor/highlight/languages/bash.min.js";
import c from "./vendor/highlight/languages/c.min.js";
import cpp from "./vendor/highlight/languages/cpp.min.js";
import css from "./vendor/highlight/languages/css.min.js";
import diff from "./vendor/highlight/languages/diff.min.js";
import go from "./vendor/highlight/languages/go.min.js";
import java from "./vendor/highlight/languages/java.min.js";
import javascript from "./vendor/highlight/languages/javascript.min.js";
import jsonGrammar from "./vendor/highlight/languages/json.min.js";
import markdown from "./vendor/highlight/languages/markdown.min.js";
import plaintext from "./vendor/highlight/languages/plaintext.min.js";
import python from "./vendor/highlight/languages/python.min.js";
import rust from "./vendor/highlight/languages/rust.min.js";
import shell from "./vendor/highlight/languages/shell.min.js";
import sql from "./vendor/highlight/languages/sql.min.js";
import typescript from "./vendor/highlight/languages/typescript.min.js";
import xml from "./vendor/highlight/languages/xml.min.js";
import yaml from "./vendor/highlight/languages/yaml.min.js";

const grammars = { bash, c, cpp, css, diff, go, java, javascript, json: jsonGrammar, markdown, plaintext,
  python, rust, shell, sql, typescript, xml, yaml };
for (const [name, grammar] of Object.entries(grammars)) hljs.registerLanguage(name, grammar);

const $ = (id) => document.getElementById(id);
const make = (tag, props = {}, ...children) => {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") el.className = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (value !== undefined && value !== null && value !== false) el.setAttribute(key, value);
  }
  el.append(...children);
  return el;
};

// -- talking to /api/v1 -----------------------------------------------------------------------

class ApiError extends Error {
  constructor(message, status = 0, retryAfter = null) {
    super(message);
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

const LOST = "Lost the connection to the server: check that it is running and that you are online, then try again.";

function cookie(name) {
  const found = document.cookie.split("; ").find((part) => part.startsWith(name + "="));
  return found ? decodeURIComponent(found.slice(name.length + 1)) : "";
}

async function api(method, path, body, { signal, headers = {} } = {}) {
  const sent = { accept: "application/json", ...headers };
  if (body !== undefined) sent["content-type"] = "application/json";
  const csrf = cookie("chinwag_csrf");
  if (csrf) sent["x-csrf-token"] = csrf;
  let response;
  try {
    response = await fetch("/api/v1" + path, {
      method, headers: sent, signal, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(LOST);
  }
  if (response.ok) return response;
  let message = `The server answered ${response.status}.`;
  let retryAfter = null;
  try {
    const envelope = (await response.json()).error;
    message = envelope.message || message;
    retryAfter = envelope.retry_after ?? null;
  } catch { /* not our envelope: keep the status */ }
  if (response.status === 401 && document.body.dataset.page !== "signin") {
    location.assign("/signin");
  }
  throw new ApiError(message, response.status, retryAfter);
}

const json = async (method, path, body, options) => {
  const response = await api(method, path, body, options);
  return response.status === 204 ? null : response.json();
};

// The events of a streamed turn (SSE: `data: <json>` frames, then `data: [DONE]`).
async function* events(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    let chunk;
    try {
      chunk = await reader.read();
    } catch (error) {
      if (error.name === "AbortError") throw error;
      throw new ApiError(LOST);
    }
    if (chunk.done) break;
    buffer += chunk.value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = frame.split("\n").filter((l) => l.startsWith("data:"))
        .map((l) => l.slice(5).trimStart()).join("\n");
      if (!data) continue;
      if (data === "[DONE]") return;
      yield JSON.parse(data);
    }
  }
  throw new ApiError(LOST);
}

function describe(error) {
  if (error.status === 429) {
    const wait = error.retryAfter ? ` Try again in about ${Math.ceil(error.retryAfter)} s.` : "";
    return `Rate limited: ${error.message}${wait}`;
  }
  if (error.status >= 500) return `The model's provider failed: ${error.message}`;
  return error.message;
}

let toastTimer = 0;
function toast(text) {
  const el = $("toast");
  el.textContent = text;
  el.classList.add("shown");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => el.classList.remove("shown"), 2500);
}

async function copy(text) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // Not a secure context (plain http on another host): the old way.
    const area = make("textarea", { class: "visually-hidden" });
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  toast("Copied");
}

// -- Markdown, sanitized --------------------------------------------------------------------

function escapeHtml(text) {
  return text.replace(/[&<>"']/g, (ch) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[ch]);
}

// Raw HTML in model output is shown as text, never as markup; DOMPurify is the second wall.
window.marked.use({ gfm: true, renderer: { html: (token) => escapeHtml(token.text ?? token.raw ?? "") } });
window.DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A") {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer nofollow");
  }
});
const PURIFY = { RETURN_DOM_FRAGMENT: true, FORBID_TAGS: ["style", "form", "input", "button", "textarea", "select", "iframe", "object", "embed"], FORBID_ATTR: ["style"] };

function toFragment(tokens, links, finished) {
  tokens.links = links;
  const html = window.marked.parser(tokens);
  const fragment = window.DOMPurify.sanitize(html, PURIFY);
  for (const pre of fragment.querySelectorAll("pre")) decorateCode(pre, finished);
  return fragment;
}

function decorateCode(pre, finished) {
  const code = pre.querySelector("code");
  const box = make("div", { class: "code" });
  pre.replaceWith(box);
  box.append(pre);
  if (!code || !finished) return;
  const language = (code.className.match(/language-([\w+#.-]+)/) || [])[1];
  if (language && hljs.getLanguage(language)) {
    code.innerHTML = hljs.highlight(code.textContent, { language, ignoreIllegals: true }).value;
    code.classList.add("hljs");
  }
  box.append(make("button", { type: "button", class: "copy", "aria-label": "Copy the code",
    onclick: () => copy(code.textContent) }, "Copy"));
}

// An answer as it streams: finished blocks are rendered once and frozen; only the
// unfinished last block is rendered again, once per animation frame at most.
class Rendered {
  constructor(container) {
    this.frozen = make("div", { class: "frozen" });
    this.tail = make("div", { class: "tail" });
    container.replaceChildren(this.frozen, this.tail);
    this.text = "";
    this.done = 0; // characters of text already frozen
    this.links = {};
    this.scheduled = false;
  }

  add(text) {
    this.text += text.replace(/\r\n?/g, "\n");
    if (!this.scheduled) {
      this.scheduled = true;
      requestAnimationFrame(() => this.flush(false));
    }
  }

  flush(final) {
    this.scheduled = false;
    const tokens = window.marked.lexer(this.text.slice(this.done));
    Object.assign(this.links, tokens.links);
    // Every block but the last is finished: another one has begun after it.
    const keep = final ? tokens.length : tokens.length - 1;
    if (keep > 0) {
      const finished = tokens.slice(0, keep);
      this.frozen.append(toFragment(finished, this.links, true));
      this.done += finished.reduce((n, t) => n + t.raw.length, 0);
    }
    this.tail.replaceChildren(toFragment(tokens.slice(keep), this.links, final));
  }

  finish() {
    this.flush(true);
  }
}

function renderMarkdown(container, text) {
  const view = new Rendered(container);
  view.text = text.replace(/\r\n?/g, "\n");
  view.finish();
}

// -- the chat -----------------------------------------------------------------------------

const state = {
  conversation: null, // the open Conversation, or null for a new chat
  branch: [], // its current branch's messages, oldest first
  tree: [], // every message of every branch
  bots: [],
  busy: false,
  controller: null,
  stoppedByUser: false,
};

function botName(uid) {
  const bot = state.bots.find((b) => b.uid === uid);
  return bot ? bot.name : "Assistant";
}

function siblings(message) {
  return state.tree
    .filter((m) => m.parent_id === message.parent_id && m.role === message.role)
    .sort((a, b) => (a.created_at < b.created_at ? -1 : a.created_at > b.created_at ? 1 : a.id < b.id ? -1 : 1));
}

function statusLine(message) {
  if (message.status === "complete") return null;
  const stopped = message.status === "partial";
  const text = stopped ? `Partial answer: ${message.error || "it was stopped"}` : `Failed: ${message.error || "no answer"}`;
  return make("p", { class: stopped ? "status" : "status failed" }, text);
}

function messageView(message, { last = false } = {}) {
  const user = message.role === "user";
  const bubble = make("div", { class: "bubble" });
  if (user) bubble.textContent = message.content;
  else renderMarkdown(bubble, message.content);
  const item = make("article", { class: `message ${message.role}`, "data-id": message.id,
    "aria-label": user ? "You" : botName(state.conversation?.bot) },
  make("div", { class: "role", "aria-hidden": "true" }, user ? "You" : botName(state.conversation?.bot)), bubble);
  const status = statusLine(message);
  if (status) item.append(status);
  const tools = make("div", { class: "tools" });
  const versions = siblings(message);
  if (versions.length > 1) {
    const at = versions.findIndex((m) => m.id === message.id);
    const move = (step) => () => switchTo(versions[at + step].id);
    tools.append(make("span", { class: "versions", role: "group", "aria-label": "Versions" },
      make("button", { type: "button", "aria-label": "Previous version", disabled: at === 0 || state.busy, onclick: move(-1) }, "‹"),
      make("span", { class: "count" }, `${at + 1}/${versions.length}`),
      make("button", { type: "button", "aria-label": "Next version", disabled: at === versions.length - 1 || state.busy, onclick: move(1) }, "›")));
  }
  if (user) {
    tools.append(make("button", { type: "button", class: "edit", disabled: state.busy, onclick: () => startEdit(item, message) }, "Edit"));
  } else {
    tools.append(make("button", { type: "button", class: "copy-answer", onclick: () => copy(message.content) }, "Copy"));
  }
  if (last) tools.append(make("button", { type: "button", class: "retry", disabled: state.busy, onclick: retry }, "Retry"));
  item.append(tools);
  return item;
}

function showMessages() {
  const list = $("messages");
  list.replaceChildren();
  const shown = state.branch.filter((m) => m.role === "user" || m.role === "assistant");
  if (!shown.length) {
    const bot = state.bots.find((b) => b.uid === (state.conversation?.bot ?? $("bot").value));
    if (bot?.welcome_message) {
      const bubble = make("div", { class: "bubble" });
      renderMarkdown(bubble, bot.welcome_message);
      list.append(make("article", { class: "message assistant welcome", "aria-label": bot.name },
        make("div", { class: "role", "aria-hidden": "true" }, bot.name), bubble));
    }
  }
  shown.forEach((m, i) => list.append(messageView(m, { last: i === shown.length - 1 })));
  list.scrollTop = list.scrollHeight;
}

function notice(text) {
  const el = make("p", { class: "notice", role: "alert" }, text);
  $("messages").append(el);
  el.scrollIntoView({ block: "end" });
}

function showHeader() {
  const conv = state.conversation;
  $("chat-title").textContent = conv ? conv.title || "Untitled conversation" : "New chat";
  document.title = conv ? `${conv.title || "Untitled"} · chinwag` : "chinwag";
  $("chat-actions").hidden = !conv;
  if (conv) {
    $("export-md").href = `/api/v1/conversations/${conv.id}/export?format=markdown`;
    $("export-json").href = `/api/v1/conversations/${conv.id}/export?format=json`;
  }
  const select = $("bot");
  select.disabled = Boolean(conv);
  if (conv) select.value = conv.bot;
  $("bot-note").textContent = conv ? "A conversation keeps the bot it started with." : "";
  $("system").value = conv?.system_prompt ?? "";
  $("save-system").hidden = !conv;
  for (const a of $("conversations").querySelectorAll("a")) {
    if (conv && a.dataset.id === conv.id) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
}

function setBusy(busy) {
  state.busy = busy;
  $("send").hidden = busy;
  $("stop").hidden = !busy;
  for (const b of $("messages").querySelectorAll(".tools button:not(.copy-answer)")) b.disabled = busy;
}

async function loadThread(id) {
  const [conversation, branch, tree] = await Promise.all([
    json("GET", `/conversations/${id}`),
    json("GET", `/conversations/${id}/messages`),
    json("GET", `/conversations/${id}/messages?all=true`),
  ]);
  Object.assign(state, { conversation, branch, tree });
}

async function openConversation(id, { push = true } = {}) {
  if (state.busy) return;
  try {
    if (id) await loadThread(id);
    else Object.assign(state, { conversation: null, branch: [], tree: [] });
  } catch (error) {
    Object.assign(state, { conversation: null, branch: [], tree: [] });
    showHeader();
    showMessages();
    notice(describe(error));
    return;
  }
  if (push) history.pushState({ id }, "", id ? `/?c=${encodeURIComponent(id)}` : "/");
  showHeader();
  showMessages();
  closeSidebar();
}

async function switchTo(messageId) {
  if (state.busy) return;
  try {
    state.branch = await json("POST", `/conversations/${state.conversation.id}/current`, { message_id: messageId });
  } catch (error) {
    notice(describe(error));
    return;
  }
  showMessages();
  const moved = $("messages").querySelector(`[data-id="${messageId}"] .versions button:not([disabled])`);
  if (moved) moved.focus();
}

// A turn: the question (if any) shown at once, the answer streamed into its own bubble.
async function turn(path, body, question) {
  const list = $("messages");
  if (question !== null) {
    list.append(make("article", { class: "message user", "aria-label": "You" },
      make("div", { class: "role", "aria-hidden": "true" }, "You"), make("div", { class: "bubble" }, question)));
  }
  const bubble = make("div", { class: "bubble typing" });
  const answer = make("article", { class: "message assistant", "aria-label": botName(state.conversation.bot), "aria-busy": "true" },
    make("div", { class: "role", "aria-hidden": "true" }, botName(state.conversation.bot)), bubble);
  list.append(answer);
  list.scrollTop = list.scrollHeight;
  const view = new Rendered(bubble);
  const controller = new AbortController();
  state.controller = controller;
  state.stoppedByUser = false;
  setBusy(true);
  let failure = null;
  try {
    const response = await api("POST", path, { ...body, stream: true }, { signal: controller.signal });
    for await (const event of events(response)) {
      if (event.type === "text") {
        bubble.classList.remove("typing");
        view.add(event.text);
        if (list.scrollHeight - list.scrollTop - list.clientHeight < 120) list.scrollTop = list.scrollHeight;
      } else if (event.type === "error") {
        failure = new ApiError(event.message, event.kind === "RateLimitError" || event.kind === "LimitError" ? 429 : 502, event.retry_after);
      } else if (event.error) {
        failure = new ApiError(event.error.message, 502);
      }
    }
  } catch (error) {
    if (error.name !== "AbortError") failure = error;
  } finally {
    view.finish();
    answer.removeAttribute("aria-busy");
    state.controller = null;
    setBusy(false);
  }
  // The stored thread now has the ids, the branches and the final statuses. A stopped
  // answer is stored by the server as it notices the stop: wait (briefly) until it has all
  // that was shown.
  try {
    for (let tries = 0; ; tries += 1) {
      await loadThread(state.conversation.id);
      const last = state.branch[state.branch.length - 1];
      const kept = last && last.role === "assistant" && last.content.length >= view.text.length;
      if (!state.stoppedByUser || kept || tries >= 30) break;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    showHeader();
    showMessages();
  } catch (error) {
    failure = failure || error;
  }
  if (state.stoppedByUser) toast("Stopped: the answer so far is kept as partial");
  if (failure) notice(describe(failure));
  refreshList();
  awaitTitle();
}

async function send(text) {
  if (!state.conversation) {
    const system = $("system").value.trim();
    try {
      state.conversation = await json("POST", "/conversations", { bot: $("bot").value || null, system: system || null });
    } catch (error) {
      notice(describe(error));
      return false;
    }
    history.pushState({ id: state.conversation.id }, "", `/?c=${state.conversation.id}`);
    state.branch = [];
    state.tree = [];
    showHeader();
    $("messages").replaceChildren();
  }
  await turn(`/conversations/${state.conversation.id}/messages`, { prompt: text }, text);
  return true;
}

function retry() {
  if (state.busy || !state.conversation) return;
  const shown = state.branch.filter((m) => m.role === "user" || m.role === "assistant");
  const last = shown[shown.length - 1];
  if (last && last.role === "assistant") {
    $("messages").querySelector(`[data-id="${last.id}"]`)?.remove();
  }
  turn(`/conversations/${state.conversation.id}/retry`, {}, null);
}

function startEdit(item, message) {
  if (state.busy) return;
  const area = make("textarea", { rows: "3", "aria-label": "Edited message" });
  area.value = message.content;
  const box = make("form", { class: "edit-box" }, area,
    make("div", {}, make("button", { type: "submit", class: "primary" }, "Save and send"),
      make("button", { type: "button", onclick: () => showMessages() }, "Cancel")));
  box.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = area.value.trim();
    if (!text) return;
    // Everything from the edited question on belongs to the old branch.
    let node = item;
    while (node) {
      const next = node.nextElementSibling;
      node.remove();
      node = next;
    }
    turn(`/messages/${message.id}/edit`, { text }, text);
  });
  area.addEventListener("keydown", (event) => {
    if (event.key === "Escape") showMessages();
  });
  item.querySelector(".bubble").replaceWith(box);
  item.querySelector(".tools")?.remove();
  area.focus();
}

// -- the sidebar ----------------------------------------------------------------------------

let listQuery = "";
async function refreshList() {
  const q = listQuery ? `&q=${encodeURIComponent(listQuery)}` : "";
  let conversations;
  try {
    conversations = await json("GET", `/conversations?limit=200${q}`);
  } catch (error) {
    toast(describe(error));
    return [];
  }
  const list = $("conversations");
  list.replaceChildren(...conversations.map((c) => make("li", {},
    make("a", { href: `/?c=${c.id}`, "data-id": c.id, title: c.title || "Untitled conversation",
      "aria-current": state.conversation?.id === c.id ? "page" : null,
      onclick: (event) => { event.preventDefault(); openConversation(c.id); } },
    c.title || "Untitled conversation"))));
  $("no-conversations").hidden = conversations.length > 0;
  $("no-conversations").textContent = listQuery ? `Nothing matches “${listQuery}”.` : "No conversations yet.";
  const open = state.conversation && conversations.find((c) => c.id === state.conversation.id);
  if (open && open.title !== state.conversation.title) {
    state.conversation.title = open.title;
    showHeader();
  }
  return conversations;
}

// Titles are written in the background after the first exchange: look a few times.
let titleTimer = 0;
function awaitTitle(tries = 12) {
  clearTimeout(titleTimer);
  if (!state.conversation || state.conversation.title || tries <= 0) return;
  titleTimer = setTimeout(async () => {
    await refreshList();
    awaitTitle(tries - 1);
  }, 1000);
}

function openSidebar() {
  $("sidebar").classList.add("open");
  $("open-side").setAttribute("aria-expanded", "true");
  $("search").focus();
}

function closeSidebar() {
  if (!$("sidebar").classList.contains("open")) return;
  $("sidebar").classList.remove("open");
  $("open-side").setAttribute("aria-expanded", "false");
}

async function rename(title) {
  try {
    state.conversation = await json("PATCH", `/conversations/${state.conversation.id}`, { title });
  } catch (error) {
    notice(describe(error));
    return;
  }
  showHeader();
  refreshList();
  toast("Renamed");
}

async function remove() {
  const conv = state.conversation;
  if (!conv || state.busy) return;
  if (!confirm(`Delete “${conv.title || "Untitled conversation"}” and all its messages? This cannot be undone.`)) return;
  try {
    await json("DELETE", `/conversations/${conv.id}`);
  } catch (error) {
    notice(describe(error));
    return;
  }
  await openConversation(null);
  refreshList();
  toast("Deleted");
}

async function startChat() {
  let bots = [];
  try {
    [bots] = await Promise.all([json("GET", "/bots"), refreshList()]);
  } catch (error) {
    notice(describe(error));
  }
  state.bots = bots;
  $("bot").replaceChildren(...bots.map((b) => make("option", { value: b.uid }, b.name)));
  const id = new URLSearchParams(location.search).get("c");
  await openConversation(id, { push: false });

  const prompt = $("prompt");
  $("composer").addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = prompt.value.trim();
    if (!text || state.busy) return;
    prompt.value = "";
    if (!(await send(text))) prompt.value = text;
    prompt.focus();
  });
  prompt.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("composer").requestSubmit();
    }
  });
  const stop = () => {
    if (!state.controller) return;
    state.stoppedByUser = true;
    state.controller.abort();
  };
  $("stop").addEventListener("click", () => { stop(); prompt.focus(); });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && state.busy) stop();
    else if (event.key === "Escape") closeSidebar();
  });
  $("new-chat").addEventListener("click", () => { openConversation(null); prompt.focus(); });
  $("bot").addEventListener("change", () => showMessages());
  $("save-system").addEventListener("click", async () => {
    const system = $("system").value.trim();
    try {
      state.conversation = await json("PATCH", `/conversations/${state.conversation.id}`, { system_prompt: system || null });
      toast("System prompt saved");
    } catch (error) {
      notice(describe(error));
    }
  });
  let searchTimer = 0;
  $("search").addEventListener("input", (event) => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => { listQuery = event.target.value.trim(); refreshList(); }, 200);
  });
  $("open-side").addEventListener("click", openSidebar);
  $("close-side").addEventListener("click", () => { closeSidebar(); $("open-side").focus(); });
  $("rename").addEventListener("click", () => {
    $("rename-input").value = state.conversation.title || "";
    $("rename-form").hidden = false;
    $("chat-title").hidden = true;
    $("chat-actions").hidden = true;
    $("rename-input").focus();
  });
  const endRename = () => {
    $("rename-form").hidden = true;
    $("chat-title").hidden = false;
    $("chat-actions").hidden = !state.conversation;
    $("rename").focus();
  };
  $("rename-cancel").addEventListener("click", endRename);
  $("rename-input").addEventListener("keydown", (event) => { if (event.key === "Escape") endRename(); });
  $("rename-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const title = $("rename-input").value.trim();
    if (title) await rename(title);
    endRename();
  });
  $("delete").addEventListener("click", remove);
  window.addEventListener("popstate", () => openConversation(new URLSearchParams(location.search).get("c"), { push: false }));
}

// -- usage ---------------------------------------------------------------------------------

const SVG = "http://www.w3.org/2000/svg";
const svg = (tag, attrs = {}, ...children) => {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, value);
  el.append(...children);
  return el;
};
const number = (n) => n.toLocaleString("en");

// A bar per day, two stacked parts: in (the prompt) and out (the answer).
function chart(container, items, inKey, outKey, unit) {
  const width = 720, height = 240, left = 48, bottom = 28, top = 24;
  const max = Math.max(1, ...items.map((d) => d[inKey] + d[outKey]));
  const step = (width - left - 8) / Math.max(1, items.length);
  const y = (v) => top + (height - top - bottom) * (1 - v / max);
  const total = items.reduce((n, d) => n + d[inKey] + d[outKey], 0);
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": `${unit} per day: ${number(total)} in ${items.length} days, at most ${number(max)} a day` });
  root.append(svg("line", { class: "axis", x1: left, x2: width, y1: y(0), y2: y(0) }));
  for (const v of [max, Math.round(max / 2)]) {
    root.append(svg("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end" }, number(v)));
    root.append(svg("line", { class: "axis", x1: left, x2: width, y1: y(v), y2: y(v), "stroke-dasharray": "2 4" }));
  }
  items.forEach((d, i) => {
    const x = left + i * step + step * 0.15;
    const w = Math.max(1, step * 0.7);
    const bar = svg("g", { class: "day", "data-date": d.date },
      svg("title", {}, `${d.date}: ${number(d[inKey])} in, ${number(d[outKey])} out`),
      svg("rect", { class: "in", x, width: w, y: y(d[inKey]), height: y(0) - y(d[inKey]) }),
      svg("rect", { class: "out", x, width: w, y: y(d[inKey] + d[outKey]), height: y(d[inKey]) - y(d[inKey] + d[outKey]) }));
    root.append(bar);
    if (items.length <= 10 || i % Math.ceil(items.length / 8) === 0 || i === items.length - 1) {
      root.append(svg("text", { x: x + w / 2, y: height - 8, "text-anchor": "middle" }, d.date.slice(5)));
    }
  });
  root.append(svg("rect", { class: "in", x: left, y: 4, width: 10, height: 10 }),
    svg("text", { class: "legend", x: left + 14, y: 13 }, "in"),
    svg("rect", { class: "out", x: left + 44, y: 4, width: 10, height: 10 }),
    svg("text", { class: "legend", x: left + 58, y: 13 }, "out"));
  container.replaceChildren(root);
}

function isoDay(date) {
  return date.toISOString().slice(0, 10);
}

async function showUsage() {
  const days = Number($("days").value);
  const end = new Date();
  const start = new Date(end.getTime() - (days - 1) * 86400000);
  const span = `start_date=${isoDay(start)}&end_date=${isoDay(end)}`;
  try {
    const [usage, bots] = await Promise.all([json("GET", `/stats/usage?${span}`), json("GET", "/bots")]);
    const t = usage.total;
    $("usage-total").textContent = `${number(t.requests)} requests, ${number(t.prompt_tokens + t.completion_tokens)} tokens, ${number(t.prompt_words + t.completion_words)} words`;
    chart($("tokens-chart"), usage.items, "prompt_tokens", "completion_tokens", "Tokens");
    chart($("words-chart"), usage.items, "prompt_words", "completion_words", "Words");
    const per = await Promise.all(bots.map(async (b) => [b, (await json("GET", `/stats/usage?${span}&bot=${encodeURIComponent(b.uid)}`)).total]));
    const rows = per.filter(([, s]) => s.requests > 0).map(([b, s]) => make("tr", {},
      make("th", { scope: "row" }, b.name), make("td", {}, number(s.requests)),
      make("td", {}, number(s.prompt_tokens)), make("td", {}, number(s.completion_tokens)),
      make("td", {}, number(s.prompt_words)), make("td", {}, number(s.completion_words))));
    $("per-bot").querySelector("tbody").replaceChildren(...(rows.length ? rows
      : [make("tr", {}, make("td", { colspan: "6" }, "No use in this period."))]));
  } catch (error) {
    $("usage-total").textContent = describe(error);
  }
}

// -- signing in and out -------------------------------------------------------------------------

function startSignin() {
  const form = $("signin-form");
  if (!form) return;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    $("signin-error").textContent = "";
    try {
      await json("POST", "/session", undefined, { headers: { authorization: `Bearer ${$("key").value.trim()}` } });
      location.assign("/");
    } catch (error) {
      $("signin-error").textContent = describe(error);
      $("key").focus();
    }
  });
}

function startAccount() {
  $("sign-out")?.addEventListener("click", async () => {
    try {
      await json("DELETE", "/session");
    } catch (error) {
      toast(describe(error));
      return;
    }
    location.assign("/signin");
  });
}

const page = document.body.dataset.page;
startAccount();
if (page === "chat") startChat();
else if (page === "usage") {
  $("days").addEventListener("change", showUsage);
  showUsage();
} else if (page === "signin") startSignin();
