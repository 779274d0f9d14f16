"""Issue 11: how often the embedded model (Gemma 3 270M, a base model) answers simple
questions sensibly at chinwag's defaults.

Each question is asked RUNS times, each in a new conversation, as a newcomer would. An
answer counts when it holds one of the expected words, has under 80 words and shows no
transcript markers (`User:`, `Assistant:`). Prints the rate against the goal (0.85), the
misses, and the command that reproduces it. `--held-out` asks a second set instead, on
which settings are chosen, so that the first is not fitted to its own questions. A
benchmark, not a test: a model's answers are not a unit test's business. Flags try other
settings; the figure at the defaults is the one without them.
"""

from __future__ import annotations

import argparse
import re
import time
from typing import Any

import anyio

from common import chinwag_home, reproduce

# (question, words of which one must appear in a sensible answer)
QUESTIONS: list[tuple[str, tuple[str, ...]]] = [
    ("Say hello in one short sentence.", ("hello", "hi")),
    ("What is the capital of France?", ("paris",)),
    ("What is the capital of Japan?", ("tokyo",)),
    ("What is the capital of Germany?", ("berlin",)),
    ("What is 2+2?", ("4", "four")),
    ("What is 3+5?", ("8", "eight")),
    ("What is 10 minus 3?", ("7", "seven")),
    ("Name the three primary colours.", ("red", "blue", "yellow")),
    ("What colour is the sky on a clear day?", ("blue",)),
    ("What colour is grass?", ("green",)),
    ("How many days are in a week?", ("7", "seven")),
    ("How many legs does a dog have?", ("4", "four")),
    ("What is Python?", ("programming", "language", "snake")),
    ("What do bees make?", ("honey",)),
    ("What is the largest planet in our solar system?", ("jupiter",)),
    ("What is the opposite of hot?", ("cold",)),
    ("Which animal says moo?", ("cow",)),
    ("What is frozen water called?", ("ice",)),
    ("Good morning!", ("morning", "hello", "hi")),
    ("Translate 'thank you' into French.", ("merci",)),
    ("Write one word that rhymes with cat.", ("hat", "bat", "mat", "rat", "sat", "pat", "fat")),
    ("What is the first month of the year?", ("january",)),
]
# Held out: settings are chosen on these, so the figure above is not fitted to its own
# questions. None is a variant of a question above, and no example exchange asks one.
HELD_OUT: list[tuple[str, tuple[str, ...]]] = [
    ("Hello, how are you?", ("fine", "good", "well", "great", "hello", "hi")),
    ("Thanks for your help!", ("welcome", "pleasure", "glad", "problem")),
    ("Goodbye!", ("goodbye", "bye", "care", "soon")),
    ("Nice to meet you.", ("nice", "glad", "pleasure", "likewise", "too")),
    ("What is 6 times 7?", ("42",)),
    ("What is half of 10?", ("5", "five")),
    ("What is 12 divided by 4?", ("3", "three")),
    ("What is double 8?", ("16", "sixteen")),
    ("What is the square root of 9?", ("3", "three")),
    ("What is 5 squared?", ("25",)),
    ("Who wrote Romeo and Juliet?", ("shakespeare",)),
    ("Which ocean is the largest?", ("pacific",)),
    ("What is the chemical symbol for gold?", ("au",)),
    ("What do you call a baby cat?", ("kitten",)),
    ("What language is spoken in Spain?", ("spanish",)),
    ("In which country are the pyramids of Giza?", ("egypt",)),
    ("What do you call a shape with three sides?", ("triangle",)),
    ("Who was the first person to walk on the Moon?", ("armstrong",)),
    ("At what temperature in Celsius does water boil?", ("100",)),
    ("How many continents are there?", ("7", "seven")),
    ("Give me a synonym for happy.", ("glad", "joyful", "cheerful", "content", "pleased")),
    ("Name a fruit that is yellow.", ("banana", "lemon", "pineapple", "mango")),
    ("What is the plural of mouse?", ("mice",)),
    ("Count from one to three.", ("3", "three")),
    ("Complete the proverb: the early bird catches the...", ("worm",)),
]
GOAL = 0.85
MARKERS = re.compile(r"\b(User|Assistant):")


def judge(answer: str, expected: tuple[str, ...]) -> str | None:
    """Why an answer misses, or None when it is sensible."""
    words = re.findall(r"[\w']+", answer.lower())
    if MARKERS.search(answer):
        return "leaks a transcript marker"
    if len(answer.split()) >= 80:
        return "80 words or more"
    if not any(e in words for e in expected):
        return f"none of {', '.join(expected)}"
    return None


async def main(args: argparse.Namespace) -> None:
    import chinwag
    from chinwag.providers.gguf import packaged_model

    settings: dict[str, Any] = {"provider": "local"}
    labels = []
    if args.temperature is not None:
        settings["providers.local.temperature"] = args.temperature
        labels.append(f"temperature {args.temperature}")
    if args.repeat_penalty is not None:
        settings["providers.local.repeat_penalty"] = args.repeat_penalty
        labels.append(f"repeat_penalty {args.repeat_penalty}")
    if args.no_examples:
        settings["providers.local.examples"] = []
        labels.append("no examples")
    with chinwag_home() as home:
        await anyio.to_thread.run_sync(packaged_model, home / "cache")
        questions = HELD_OUT if args.held_out else QUESTIONS
        misses: list[str] = []
        good = total = 0
        started = time.perf_counter()
        async with chinwag.AsyncClient(chinwag.Config(settings)) as client:
            for question, expected in questions:
                for _ in range(args.runs):
                    reply = await client.ask(question)
                    why = judge(reply.text, expected)
                    total += 1
                    if why is None:
                        good += 1
                    else:
                        misses.append(f"  {question!r} -> {reply.text.strip()!r} ({why})")
        elapsed = time.perf_counter() - started
    setting = ", ".join(labels) or "the defaults"
    which = "held-out questions" if args.held_out else "questions"
    print(f"{len(questions)} {which} x {args.runs} runs at {setting}, in {elapsed:.0f} s")
    print(f"sensible answers: {good}/{total} = {good / total:.2f} (goal >= {GOAL})")
    if misses:
        print("misses:")
        print("\n".join(misses))
    flags = " ".join(
        f for f in (
            "--held-out" if args.held_out else "",
            f"--runs {args.runs}" if args.runs != 3 else "",
            f"--temperature {args.temperature}" if args.temperature is not None else "",
            f"--repeat-penalty {args.repeat_penalty}" if args.repeat_penalty is not None else "",
            "--no-examples" if args.no_examples else "",
        ) if f
    )  # fmt: skip
    reproduce("bench_quality.py", flags)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--held-out", action="store_true", help="the held-out questions")
    parser.add_argument("--runs", type=int, default=3, help="times each question is asked")
    parser.add_argument("--temperature", type=float, help="instead of the default")
    parser.add_argument("--repeat-penalty", type=float, help="instead of the default")
    parser.add_argument("--no-examples", action="store_true", help="no example exchanges")
    anyio.run(main, parser.parse_args())
