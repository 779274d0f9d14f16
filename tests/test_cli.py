"""The `chinwag` command, run as a subprocess against the loopback server."""

from __future__ import annotations

import json
import signal
import stat
import subprocess
import sys
from pathlib import Path

from tests.conftest import PNG, Runner, default_sigint
from tests.fake_openai import FakeOpenAI, Script


def test_help_lists_every_command(run: Runner) -> None:
    out = run("--help")
    assert out.returncode == 0
    for name in ("ask", "chat", "bots", "conversations", "stats", "config", "models", "health"):
        assert name in out.stdout


def test_a_bare_prompt_is_ask_and_streams_plain_text(run: Runner, server: FakeOpenAI) -> None:
    out = run("Say", "hello")
    assert (out.returncode, out.stdout) == (0, "You said: Say hello\n")
    assert server.requests[-1]["stream"] is True
    assert "\x1b[" not in out.stdout  # no terminal codes when stdout is not a terminal


def test_piped_stdin_joins_the_prompt(run: Runner, server: FakeOpenAI) -> None:
    out = run("ask", "Summarize:", stdin="line one\nline two\n")
    assert out.stdout == "You said: Summarize:\n\nline one\nline two\n"
    assert run(stdin="only piped").stdout == "You said: only piped\n"


def test_ask_attaches_files_and_show_names_them(
    run: Runner, server: FakeOpenAI, tmp_path: Path
) -> None:
    note, image = tmp_path / "note.txt", tmp_path / "cat.png"
    note.write_text("Tea at five.\n")
    image.write_bytes(PNG)
    out = run("ask", "--json", "-a", str(note), "--attach", str(image), "What is this?")
    assert out.returncode == 0, out.stderr
    text, picture = server.requests[-1]["messages"][-1]["content"]
    assert text["text"] == "File: note.txt\n```\nTea at five.\n```\n\nWhat is this?"
    assert picture["image_url"]["url"].startswith("data:image/png;base64,iVBORw0KGgo")
    shown = run("conversations", "show", json.loads(out.stdout)["conversation_id"])
    assert f"Attached: note.txt (text/plain, 13 bytes), cat.png (image/png, {len(PNG)} bytes)" in (
        shown.stdout
    )
    assert run("-a", str(note), "Summarize").returncode == 0  # a bare prompt takes them too
    assert run("ask", "-a", str(note)).stdout == (  # and files alone are a question
        "You said: File: note.txt\n```\nTea at five.\n```\n"
    )
    missing = run("ask", "-a", str(tmp_path / "nope.txt"), "hi")
    assert missing.returncode == 1
    assert f"No file {tmp_path}/nope.txt: check the path." in missing.stderr
    assert len(server.requests) == 3  # nothing was sent for the missing file


def test_json_no_stream_and_usage(run: Runner, server: FakeOpenAI) -> None:
    reply = json.loads(run("ask", "--json", "hi").stdout)
    assert reply["text"] == "You said: hi"
    assert reply["usage"]["completion_tokens"] == 3
    plain = run("--no-stream", "hi")
    assert plain.stdout == "You said: hi\n"
    assert "stream" not in server.requests[-1]
    usage = run("--usage", "hi")
    assert usage.stdout == "You said: hi\n"
    assert "tokens in" in usage.stderr
    assert "model test-model" in usage.stderr


def test_continue_conversation_and_turn_options(run: Runner, server: FakeOpenAI) -> None:
    run("first")
    run("-c", "second")
    assert [m["content"] for m in server.requests[-1]["messages"][1:]] == [
        "first",
        "You said: first",
        "second",
    ]
    run(
        "-s", "Be terse.", "-o", "temperature=0.3", "-o", "max_tokens=7", "-o", "stop=END",
        "--language", "French", "--max-words", "20", "--user", "bob", "hi",
    )  # fmt: skip
    request = server.requests[-1]
    assert request["messages"][0]["content"].startswith("Be terse.")
    assert "Answer in French." in request["messages"][0]["content"]
    assert (request["temperature"], request["max_tokens"], request["stop"]) == (0.3, 7, ["END"])
    listed = run("conversations", "list", "--user", "bob").stdout.splitlines()
    assert len(listed) == 1
    assert " unknown  " in listed[0]  # its cost: the fake's model has no known price
    cid = listed[0].split()[0]
    run("--conversation", cid, "--user", "bob", "again")
    assert server.requests[-1]["messages"][-2]["content"] == "You said: hi"


def test_usage_errors_exit_2(run: Runner) -> None:
    bad = run("-o", "warmth=9", "hi")
    assert bad.returncode == 2
    assert "KEY one of temperature" in bad.stderr
    assert run("ask", "--no-such-flag", "hi").returncode == 2
    empty = run("ask")
    assert empty.returncode == 2
    assert "Give a prompt" in empty.stderr
    assert run("-c", "hi").returncode == 2  # nothing to continue yet


def test_failures_are_one_line_and_debug_shows_the_traceback(run: Runner) -> None:
    run.env["OPENAI_BASE_URL"] = "http://127.0.0.1:9/v1"
    out = run("hi")
    assert out.returncode == 1
    assert out.stderr.startswith("chinwag: Could not connect")
    assert len(out.stderr.strip().splitlines()) == 1
    assert "Traceback" in run("--debug", "hi").stderr


def test_ctrl_c_exits_130_and_keeps_the_partial_answer(run: Runner, server: FakeOpenAI) -> None:
    server.script(Script(text=" ".join(f"w{i}" for i in range(200)), chunk_delay=0.05))
    proc = subprocess.Popen(
        [sys.executable, "-m", "chinwag", "count slowly"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        text=True, env=run.env, preexec_fn=default_sigint,
    )  # fmt: skip
    assert proc.stdout is not None
    first = proc.stdout.read(10)  # some of the answer has arrived
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=20) == 130
    assert first.startswith("w0 w1")
    cid = run("conversations", "list").stdout.split()[0]
    shown = run("conversations", "export", cid).stdout
    answer = json.loads(shown)["messages"][-1]
    assert answer["status"] == "partial"
    assert answer["content"].startswith("w0 w1")
    assert len(answer["content"].split()) < 200


def test_bots_commands(run: Runner, home: Path) -> None:
    added = run("bots", "add", "Pirate Bot", "-s", "Talk like a pirate.", "-o", "temperature=0.9")
    assert added.returncode == 0
    assert "pirate-bot" in run("bots", "list").stdout
    shown = run("bots", "show", "pirate-bot").stdout
    assert "system_prompt: Talk like a pirate." in shown
    assert run("bots", "edit", "pirate-bot", "--model", "other-model").returncode == 0
    assert "model: other-model" in run("bots", "export", "pirate-bot").stdout
    refused = run("bots", "rm", "default")
    assert (refused.returncode, refused.stderr.count("\n")) == (1, 1)
    assert run("bots", "rm", "pirate-bot").returncode == 0
    assert "pirate-bot" not in run("bots", "list").stdout


def test_conversations_commands_and_an_exact_round_trip(run: Runner, tmp_path: Path) -> None:
    run("first question")
    run("-c", "second question")
    cid = run("conversations", "list").stdout.split()[0]
    assert run("conversations", "rename", cid, "My talk").returncode == 0
    markdown = run("conversations", "show", cid).stdout
    assert markdown.startswith("# My talk")
    assert "You said: second question" in markdown
    exported = run("conversations", "export", cid).stdout
    (tmp_path / "c.json").write_text(exported)
    again = run("conversations", "import", str(tmp_path / "c.json"))
    assert again.returncode == 1
    assert "already stored" in again.stderr
    assert run("conversations", "rm", cid).returncode == 0
    assert run("conversations", "import", str(tmp_path / "c.json")).returncode == 0
    assert run("conversations", "export", cid).stdout == exported  # exactly as it was
    assert run("conversations", "export", "-f", "markdown", cid).stdout.startswith("# My talk")


def test_stats_config_models_and_health(run: Runner, home: Path) -> None:
    run("hello there")
    stats = run("stats").stdout.splitlines()
    assert stats[0].split()[:3] == ["day", "requests", "errors"]
    today = stats[-2]
    assert today.split()[1] == "1"
    assert "█" in today
    assert run("stats", "--from", "2026-01-01", "--to", "2025-01-01").returncode == 1
    assert run("config", "set", "providers.openai.timeout", "30").returncode == 0
    assert run("config", "get", "providers.openai.timeout").stdout.strip() == "30.0"
    assert "timeout: 30" in (home / "config.yaml").read_text()
    refused = run("config", "set", "context_window", "-5")
    assert refused.returncode == 1
    assert "context_window" in refused.stderr
    run.env["OPENAI_API_KEY"] = "sk-very-secret"
    assert "sk-very-secret" not in run("config", "show").stdout
    assert "sk-very-secret" not in run("config", "get", "providers").stdout
    assert "config file:" in run("config", "path").stdout
    assert "openai: other-model, test-model" in run("models").stdout
    health = run("health")
    assert health.returncode == 0
    assert "default provider: openai" in health.stdout
    run.env["OPENAI_BASE_URL"] = "http://127.0.0.1:9/v1"
    down = run("health")
    assert down.returncode == 1
    assert "DOWN openai" in down.stdout


def test_python_dash_m_and_the_console_script_agree(run: Runner) -> None:
    script = Path(sys.executable).with_name("chinwag")
    out = subprocess.run(
        [str(script), "hi"], capture_output=True, text=True, env=run.env, timeout=60,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert out.stdout == "You said: hi\n"


def test_config_edit_opens_the_editor_and_checks_the_result(run: Runner, tmp_path: Path) -> None:
    editor = tmp_path / "editor.sh"
    editor.write_text('#!/bin/sh\necho "user: edited" >> "$1"\n')
    editor.chmod(0o755)
    run.env["EDITOR"] = str(editor)
    out = run("config", "edit")
    assert out.returncode == 0
    assert "is valid" in out.stdout
    assert run("config", "get", "user").stdout.strip() == "edited"
    editor.write_text('#!/bin/sh\necho "usr: typo" >> "$1"\n')
    broken = run("config", "edit")
    assert broken.returncode == 1
    assert "usr is not a chinwag setting" in broken.stderr


def test_ctrl_c_tests_hold_when_the_runner_ignores_sigint(tmp_path: Path) -> None:
    """Run from a background job (SIGINT ignored), the Ctrl-C tests still test chinwag."""
    here = Path(__file__).parent
    tests = [
        f"{here / 'test_cli.py'}::test_ctrl_c_exits_130_and_keeps_the_partial_answer",
        f"{here / 'test_shell.py'}::test_ctrl_c_stops_the_answer_in_a_real_terminal",
    ]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
        capture_output=True, text=True, timeout=120, cwd=here.parent,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:]
    assert "2 passed" in done.stdout


def _one_line(out: subprocess.CompletedProcess[str], code: int) -> str:
    """The single stderr line of a command that failed with `code`."""
    assert out.returncode == code, out.stderr
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr
    return lines[0]


def test_malformed_yaml_values_are_one_line_usage_errors(run: Runner, home: Path) -> None:
    line = _one_line(run("-o", "temperature=[", "hi"), 2)
    assert "'temperature=['" in line
    assert "not a valid YAML value" in line
    line = _one_line(run("config", "set", "model", "["), 2)
    assert "'['" in line
    assert "YAML" in line
    assert not (home / "config.yaml").exists()
    assert _one_line(run("-o", "warmth=9", "hi"), 2).startswith("chinwag: Invalid value for -o")


def test_broken_config_files_are_one_line(run: Runner, home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.yaml").write_text("user: me\nmodel: [unclosed\nbot: x\n")
    line = _one_line(run("hi"), 1)
    assert str(home / "config.yaml") in line
    assert "line 3" in line
    (home / "config.yaml").write_bytes(b"user: \xff\n")
    assert "is not UTF-8 text" in _one_line(run("config", "show"), 1)
    (home / "config.yaml").write_text("profiles:\n  work: 5\n")
    assert "profile 'work'" in _one_line(run("--profile", "work", "hi"), 1)


def test_profile_goes_before_or_after_any_command(
    run: Runner, home: Path, server: FakeOpenAI
) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.yaml").write_text("profiles:\n  work:\n    system_prompt: From work.\n")
    for args in (
        ("--profile=work", "config", "get", "system_prompt"),
        ("--profile", "work", "config", "get", "system_prompt"),
        ("config", "get", "system_prompt", "--profile=work"),
        ("config", "--profile", "work", "get", "system_prompt"),
    ):
        out = run(*args)
        assert (out.returncode, out.stdout.strip()) == (0, "From work."), args
    work = {"role": "system", "content": "From work."}
    for asked, stdin in (
        (("--profile=work", "hi"), ""),
        (("--profile=work", "-b", "default", "hi"), ""),
        (("hi", "--profile=work"), ""),
        (("ask", "--profile", "work", "hi"), ""),
        (("--profile=work",), "hi from a pipe"),
    ):
        out = run(*asked, stdin=stdin)
        assert out.returncode == 0, (asked, out.stderr)
        assert server.requests[-1]["messages"][0] == work, asked
    assert run("--profile=work", "health").returncode == 0
    assert "profile 'nope'" in _one_line(run("health", "--profile", "nope"), 1)
    assert "profile 'nope'" in _one_line(run("--profile=nope", "bots", "list"), 1)


def test_a_broken_bot_file_is_listed_and_refused_alone(
    run: Runner, home: Path, server: FakeOpenAI
) -> None:
    (home / "bots").mkdir(parents=True)
    (home / "bots" / "bad.yaml").write_text("name: Bad\nparams:\n  temperature: hot\n")
    (home / "bots" / "pirate.yaml").write_text("name: Pirate\n")
    assert run("hi").stdout == "You said: hi\n"
    assert run("-b", "pirate", "ahoy").returncode == 0
    line = _one_line(run("-b", "bad", "hi"), 1)
    assert str(home / "bots" / "bad.yaml") in line
    assert "params.temperature" in line
    listed = run("bots", "list").stdout.splitlines()
    [bad] = [row for row in listed if row.startswith("bad ")]
    assert "BROKEN" in bad
    assert "params.temperature" in bad
    assert any(row.startswith("pirate ") for row in listed)
    health = run("health")
    assert health.returncode == 0
    assert "BROKEN bot bad:" in health.stdout


def test_per_model_settings_for_a_model_name_with_dots(run: Runner, server: FakeOpenAI) -> None:
    key = 'models."gpt-4.1".system_prompt'
    assert run("config", "set", key, "Be brief.").returncode == 0
    assert run("config", "get", key).stdout == "Be brief.\n"
    run.env["CHINWAG_MODEL"] = "gpt-4.1"
    assert run("hi").returncode == 0
    assert server.requests[-1]["messages"][0]["content"] == "Be brief."


def test_config_show_masks_secret_headers_and_urls_and_the_file_is_private(
    run: Runner, home: Path
) -> None:
    header = "providers.openai.headers.Authorization"
    assert run("config", "set", header, "Bearer sk-1").returncode == 0
    assert stat.S_IMODE((home / "config.yaml").stat().st_mode) == 0o600
    run("config", "set", "search.url", "https://searx.example/?key=sk-2")
    run.env["CHINWAG_STORE__URL"] = "postgresql://chinwag:sk-3@db.example/chinwag"
    shown = run("config", "show").stdout
    assert "Authorization: '***'" in shown
    assert "chinwag:***@db.example" in shown
    assert "sk-" not in shown
    assert "sk-" not in run("config", "get", "providers.openai.headers").stdout
    assert run("config", "get", "search.url").stdout == "https://searx.example/?key=***\n"


def test_an_import_that_is_not_utf8_is_one_line(run: Runner, tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_bytes(b'{"conversation": "\xff"}')
    for out in (
        run("conversations", "import", str(tmp_path / "bad.json")),
        run("conversations", "import", stdin=None),
    ):
        assert out.returncode in (1, 2)
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    out = run("conversations", "import", str(tmp_path / "bad.json"))
    assert "is not UTF-8 text (byte 0xff on line 1)" in out.stderr


def test_sigterm_stops_like_ctrl_c_and_keeps_the_partial_answer(
    run: Runner, server: FakeOpenAI
) -> None:
    server.script(Script(text=" ".join(f"w{i}" for i in range(200)), chunk_delay=0.05))
    proc = subprocess.Popen(
        [sys.executable, "-m", "chinwag", "count slowly"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        text=True, env=run.env,
    )  # fmt: skip
    assert proc.stdout is not None
    first = proc.stdout.read(10)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 128 + signal.SIGTERM
    shown = first + proc.stdout.read()
    cid = run("conversations", "list").stdout.split()[0]
    answer = json.loads(run("conversations", "export", cid).stdout)["messages"][-1]
    assert answer["status"] == "partial"
    # Everything printed was stored (the sync stream may have read a little further).
    assert answer["content"].startswith(shown.strip())
