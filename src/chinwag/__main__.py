"""`python -m chinwag "prompt"`: answer one prompt on the default provider, streamed."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print('usage: chinwag "your prompt"   (reads the prompt from stdin when piped)')
        return 0 if args else 2
    prompt = " ".join(args)
    if not sys.stdin.isatty():
        piped = sys.stdin.read().strip()
        if piped:
            prompt = f"{prompt}\n\n{piped}"
    from chinwag.client import Client
    from chinwag.errors import ChinwagError

    try:
        with Client() as client:
            stream = client.stream(prompt)
            for delta in stream:
                sys.stdout.write(delta)
                sys.stdout.flush()
            sys.stdout.write("\n")
    except ChinwagError as exc:
        print(f"chinwag: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug: still one line, not a traceback
        print(f"chinwag: unexpected {type(exc).__name__}: {exc} (a bug; please report it)",
              file=sys.stderr)  # fmt: skip
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
