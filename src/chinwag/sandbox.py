"""The bounded Jinja2 sandbox that templates and workflows render in.

Jinja2's immutable sandbox keeps a template away from Python's internals, but not from
running forever or filling memory: `{{ 9**(9**9) }}`, loops in loops, `'a'*10**10`, or a
YAML alias bomb printed whole. Here every loop step, call, filter and intercepted operator
goes through a Guard that counts steps, watches the clock (`templates.timeout`) and
refuses, before computing it, any text, list or number past its bounds
(`templates.max_output`). Loops, `~` and output are routed through the guard by rewriting
the parsed template before it is compiled.
"""

from __future__ import annotations

import functools
import inspect
import math
import re
import string
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from types import BuiltinMethodType
from typing import Any

from jinja2 import StrictUndefined, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError, TemplateError
from jinja2.runtime import Context, LoopContext, Undefined, markup_join, str_join
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import generate_lorem_ipsum, pass_context
from jinja2.visitor import NodeTransformer
from markupsafe import Markup

from chinwag.config import TemplateSettings
from chinwag.errors import ChinwagError, InputError

MAX_STEPS = 1_000_000  # loop steps, calls, filters and operators in one render
MAX_RANGE = 10_000  # Jinja2's sandbox allows 100,000; no prompt counts that far
MAX_INT_BITS = 100_000  # ~30,000 digits, seven times what Python will print
_BUILD_FACTOR = 10  # text built anywhere (macros, set blocks) vs the final output's bound

_LOOP, _CONCAT, _OUTPUT = "chinwag_loop", "chinwag_concat", "chinwag_output"
_DATA, _COMPARED = "chinwag_data", "chinwag_compared"
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0 +-]*(\*|\d+)?(?:\.(\*|\d+))?")


class Refused(Exception):
    """A render went past one of its bounds; the message says which."""


def measure(value: Any, limit: int) -> tuple[int, int]:
    """About how long `str(value)` is, and how deep it nests; stops counting past `limit`.

    Shared references count each time they are reached, as printing them would, so a YAML
    alias bomb or a self-referencing list measures as too long without being expanded.
    """
    size, depth = 0, 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack and size <= limit:
        item, level = stack.pop()
        depth = max(depth, level)
        if isinstance(item, str | bytes):
            size += len(item)
        elif isinstance(item, bool) or item is None:
            size += 5
        elif isinstance(item, int):
            size += item.bit_length() * 3 // 10 + 1
        elif isinstance(item, Undefined | range):
            size += 20
        elif isinstance(item, Mapping):
            size += 2 + 4 * len(item)
            if size <= limit:
                stack.extend((part, level + 1) for pair in item.items() for part in pair)
        elif isinstance(item, Collection):
            size += 2 + 2 * len(item)
            if size <= limit:
                stack.extend((part, level + 1) for part in item)
        else:
            size += 8
    return size, depth


def check_expansion(data: Any, what: str, limit: int) -> None:
    """Refuse loaded YAML whose aliases expand it past `limit` characters."""
    if measure(data, limit)[0] > limit:
        raise InputError(
            f"{what} expands to more than {limit} characters (aliases repeating aliases?): "
            f"write the values out instead."
        )


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


class Guard:
    """One render's budget: steps, a deadline, and the size of what it builds."""

    def __init__(self, limits: TemplateSettings) -> None:
        self.max_output = limits.max_output
        self.timeout = limits.timeout
        self.deadline = time.monotonic() + limits.timeout
        self.steps = 0
        self.built = 0  # characters output anywhere, captured blocks and macros included

    def step(self) -> None:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise Refused(f"takes more than {MAX_STEPS} loop steps, calls and operations")
        self.tick()

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise Refused(f"takes longer than {self.timeout:g} s to render (templates.timeout)")

    def size(self, n: int, what: str = "build a text or list") -> None:
        if n > self.max_output:
            raise Refused(f"would {what} of more than {self.max_output} (templates.max_output)")

    def text(self, value: Any, what: str = "build a text or list") -> int:
        """The length `str(value)` would have, refused past the bound before it is made."""
        n = len(value) if isinstance(value, str) else measure(value, self.max_output)[0]
        self.size(n, what)
        return n

    def compared(self, value: Any) -> Any:
        """A value about to be compared or hashed, which walks all of it."""
        if not isinstance(value, str | int | float):
            self.text(value, "compare or hash a value")
        return value

    def number(self, bits: float) -> None:
        if bits > MAX_INT_BITS:
            raise Refused(f"computes a number of more than {MAX_INT_BITS * 3 // 10} digits")

    def result(self, value: Any) -> Any:
        """A value just made, checked against the bounds."""
        if isinstance(value, str | bytes | list | tuple | dict | set | frozenset):
            self.size(len(value))
        elif isinstance(value, int):
            self.number(value.bit_length())
        return value

    def loop(self, iterable: Iterable[Any]) -> Iterator[Any]:
        for item in iterable:
            self.step()
            yield item

    def output(self, value: Any) -> Any:
        self.built += self.text(value)
        if self.built > _BUILD_FACTOR * self.max_output:
            raise Refused(
                f"builds more than {_BUILD_FACTOR * self.max_output} characters of text "
                f"({_BUILD_FACTOR} × templates.max_output)"
            )
        self.tick()
        return value

    def range(self, *args: int) -> range:
        numbers = range(*args)
        try:
            count = len(numbers)
        except OverflowError:
            count = MAX_RANGE + 1
        if count > MAX_RANGE:
            raise Refused(f"asks for a range of more than {MAX_RANGE} numbers")
        return numbers

    def binop(self, operator: str, left: Any, right: Any) -> None:
        """Refuse `**`, `*`, `+` and `%` whose result would be too large, before computing it."""
        self.step()
        if operator == "**" and isinstance(left, int) and isinstance(right, int):
            if right > 0 and abs(left) > 1:
                self.number(right if right > MAX_INT_BITS else right * math.log2(abs(left)))
        elif operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | bytes | list | tuple) and isinstance(times, int):
                    self.size(len(seq) * times)
            if isinstance(left, int) and isinstance(right, int):
                self.number(left.bit_length() + right.bit_length())
        elif operator == "+":
            if isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple):
                self.size(len(left) + len(right))
        elif operator == "%" and isinstance(left, str):
            self.percent(left, right)

    def percent(self, fmt: str, args: Any) -> None:
        """Refuse `fmt % args` with huge widths or arguments."""
        star = False
        for spec in _PERCENT_SPEC.findall(fmt):
            for number in spec:
                if number == "*":
                    star = True
                elif number:
                    self.size(int(number) if len(number) < 10 else self.max_output + 1)
        if star:
            for arg in args if isinstance(args, tuple) else (args,):
                self.size(_int(arg))
        self.text(args)

    def format(self, fmt: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
        """Refuse `fmt.format(...)` with huge widths or arguments."""
        try:
            specs = [spec for _, _, spec, _ in string.Formatter().parse(fmt) if spec]
        except ValueError:
            return  # the call itself reports the bad format string
        for spec in specs:
            for number in re.findall(r"\d+", spec):
                self.size(int(number) if len(number) < 10 else self.max_output + 1)
        if any("{" in spec for spec in specs):  # widths given as arguments
            for arg in (*args, *kwargs.values()):
                self.size(_int(arg))
        self.text([args, dict(kwargs)])

    def method(self, method: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
        """Refuse a str method whose result would be too large; the arguments to call with."""
        owner = getattr(method, "__self__", None)
        if not isinstance(method, BuiltinMethodType) or not isinstance(owner, str):
            return args
        name = method.__name__
        if name in ("center", "ljust", "rjust", "zfill") and args:
            self.size(_int(args[0]))
        elif name == "expandtabs":
            self.size(len(owner) + owner.count("\t") * _int(args[0] if args else 8))
        elif name == "replace" and len(args) >= 2 and isinstance(args[0], str):
            old, new = args[0], args[1] if isinstance(args[1], str) else ""
            count = owner.count(old) if old else len(owner) + 1
            if len(args) > 2 and _int(args[2]) >= 0:
                count = min(count, _int(args[2]))
            self.size(len(owner) + count * len(new))
        elif name == "join" and args:
            items = list(args[0])
            self.size(measure(items, self.max_output)[0] + len(owner) * len(items))
            args = (items, *args[1:])
        elif name == "translate" and args and isinstance(args[0], Mapping):
            longest = max((self.text(v) for v in args[0].values()), default=1)
            self.size(len(owner) * longest)
        return args


# Checks before a filter runs, on its bound arguments; they may replace an argument (an
# iterator read into a list to measure it). Filters that turn their value into text have
# that text measured first (see _STRINGIFYING).
def _check_indent(g: Guard, a: dict[str, Any]) -> None:
    width = a["width"] if isinstance(a["width"], int) else g.text(a["width"])
    s = str(a["s"])
    g.size(len(s) + (s.count("\n") + 1) * width)


def _check_wordwrap(g: Guard, a: dict[str, Any]) -> None:
    s, width = str(a["s"]), max(_int(a["width"]), 1)
    lines = 2 * len(s) // width + s.count("\n") + 1
    g.size(len(s) + lines * g.text(a["wrapstring"] or "\n"))


def _check_replace(g: Guard, a: dict[str, Any]) -> None:
    g.text(a["old"])
    s, old = str(a["s"]), str(a["old"])  # s is measured first: replace is in _STRINGIFYING
    count = s.count(old) if old else len(s) + 1
    if isinstance(a["count"], int) and a["count"] >= 0:
        count = min(count, a["count"])
    g.size(len(s) + count * g.text(a["new"]))


def _check_join(g: Guard, a: dict[str, Any]) -> None:
    a["value"] = items = list(a["value"])
    g.size(measure(items, g.max_output)[0] + g.text(a["d"]) * len(items))


def _check_sum(g: Guard, a: dict[str, Any]) -> None:
    if isinstance(a["start"], int | float) and not isinstance(a["start"], bool):
        return
    a["iterable"] = items = list(a["iterable"])
    total = sum(len(x) for x in items if isinstance(x, Collection)) + g.text(a["start"])
    g.size(total * len(items))  # each addition copies what came before


def _check_tojson(g: Guard, a: dict[str, Any]) -> None:
    size, depth = measure(a["value"], g.max_output)
    g.size(size * (1 + _int(a["indent"]) * depth))


def _check_pprint(g: Guard, a: dict[str, Any]) -> None:
    size, depth = measure(a["value"], g.max_output)
    g.size(size * (1 + depth))


_FILTER_CHECKS: dict[str, Callable[[Guard, dict[str, Any]], None]] = {
    "center": lambda g, a: g.size(_int(a["width"])),
    "indent": _check_indent,
    "wordwrap": _check_wordwrap,
    "replace": _check_replace,
    "join": _check_join,
    "format": lambda g, a: g.percent(str(a["value"]), a["kwargs"] or a["args"]),
    "batch": lambda g, a: g.size(_int(a["linecount"]) if a["fill_with"] is not None else 0),
    "slice": lambda g, a: g.size(_int(a["slices"])),
    "sum": _check_sum,
    "tojson": _check_tojson,
    "pprint": _check_pprint,
}
_COMPARING = {"dictsort", "groupby", "max", "min", "sort", "unique"}  # walk their values
_CONTEXTS = {"context", "eval_ctx", "environment", "env"}  # how Jinja2's filters name it
_STRINGIFYING = {
    "capitalize", "center", "e", "escape", "forceescape", "format", "indent", "lower",
    "replace", "safe", "string", "striptags", "title", "trim", "truncate", "upper",
    "urlencode", "urlize", "wordcount", "wordwrap", "xmlattr",
}  # fmt: skip


class _Rewrite(NodeTransformer):
    """Route loops, `~` and every piece of output through the guard's filters."""

    @staticmethod
    def _filter(name: str, node: nodes.Node, lineno: int) -> nodes.Filter:
        return nodes.Filter(node, name, [], [], None, None, lineno=lineno)

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = self._filter(_LOOP, node.iter, node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return self._filter(_CONCAT, nodes.List(node.nodes, lineno=node.lineno), node.lineno)

    def visit_Compare(self, node: nodes.Compare) -> nodes.Node:
        self.generic_visit(node)
        node.expr = self._filter(_COMPARED, node.expr, node.lineno)
        for operand in node.ops:
            operand.expr = self._filter(_COMPARED, operand.expr, node.lineno)
        return node

    def visit_Pair(self, node: nodes.Pair) -> nodes.Node:  # a dict literal's key is hashed
        self.generic_visit(node)
        node.key = self._filter(_COMPARED, node.key, node.lineno)
        return node

    def visit_Output(self, node: nodes.Output) -> nodes.Node:
        self.generic_visit(node)
        node.nodes = [
            self._filter(_DATA, nodes.Const(child.data, lineno=child.lineno), child.lineno)
            if isinstance(child, nodes.TemplateData)
            else self._filter(_OUTPUT, child, child.lineno)
            for child in node.nodes
        ]
        return node


class _Generator(CodeGenerator):
    def visit_Template(self, node: nodes.Template, frame: Frame | None = None) -> None:
        _Rewrite().visit(node)
        node.set_environment(self.environment)
        super().visit_Template(node, frame)


class Sandbox(ImmutableSandboxedEnvironment):
    """Jinja2's immutable sandbox, with every step of a render counted and bounded."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})
    code_generator_class = _Generator

    def __init__(self, limits: TemplateSettings | None = None) -> None:
        super().__init__(undefined=StrictUndefined, keep_trailing_newline=True)
        self.guard = guard = Guard(limits or TemplateSettings())
        self.filters = {name: self._guarded(name, f) for name, f in self.filters.items()}
        self.filters[_LOOP] = pass_context(lambda _, iterable: guard.loop(iterable))
        self.filters[_CONCAT] = pass_context(lambda context, parts: self._concat(context, parts))
        self.filters[_OUTPUT] = pass_context(lambda _, value: guard.output(value))
        self.filters[_DATA] = pass_context(lambda context, text: self._data(context, text))
        self.filters[_COMPARED] = pass_context(lambda _, value: guard.compared(value))
        self.tests = {name: self._guarded_test(test) for name, test in self.tests.items()}
        self.globals["range"] = guard.range
        self.globals["lipsum"] = self._lipsum

    def _guarded(self, name: str, func: Callable[..., Any]) -> Callable[..., Any]:
        guard = self.guard
        check = _FILTER_CHECKS.get(name)
        signature = inspect.signature(func) if check else None
        first = 1 if hasattr(func, "jinja_pass_arg") else 0  # the value after the context
        # Jinja2's async variants (slice, list) take the context their signature omits.
        listed = signature is not None and next(iter(signature.parameters)) in _CONTEXTS
        hidden = first if not listed else 0

        @functools.wraps(func)  # keeps Jinja2's pass_context (and the like) marks
        def guarded(*args: Any, **kwargs: Any) -> Any:
            guard.step()
            if name in _STRINGIFYING and len(args) > first:
                guard.text(args[first])
            elif name in _COMPARING and len(args) > first:
                guard.compared(args[first])
            if check is not None and signature is not None:
                bound = signature.bind(*args[hidden:], **kwargs)
                bound.apply_defaults()
                check(guard, bound.arguments)
                args, kwargs = (*args[:hidden], *bound.args), bound.kwargs
            return guard.result(func(*args, **kwargs))

        return guarded

    def _guarded_test(self, test: Any) -> Callable[..., Any]:
        guard = self.guard

        @functools.wraps(test)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            guard.step()
            for arg in (*args, *kwargs.values()):  # `is eq(x)`, `is in(x)` compare them
                if isinstance(arg, Collection):
                    guard.compared(arg)
            return test(*args, **kwargs)

        return guarded

    def _concat(self, context: Context, parts: list[Any]) -> str:
        self.guard.step()
        self.guard.size(sum(self.guard.text(part) for part in parts))
        return (markup_join if context.eval_ctx.autoescape else str_join)(parts)

    def _data(self, context: Context, text: str) -> str:
        """The template's own text: counted like any output, never escaped."""
        return Markup(text) if self.guard.output(text) and context.eval_ctx.autoescape else text

    def _lipsum(self, n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
        self.guard.step()
        self.guard.size(_int(n) * _int(max) * 12)
        return str(generate_lorem_ipsum(n, html, min, max))

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        self.guard.binop(operator, left, right)
        return self.guard.result(super().call_binop(context, operator, left, right))

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        self.guard.step()
        if isinstance(obj, LoopContext) and args:  # a recursive loop's next level
            args = (self.guard.loop(args[0]), *args[1:])
        else:
            args = self.guard.method(obj, args)
        return self.guard.result(super().call(context, obj, *args, **kwargs))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        fmt = value.__self__

        def guarded(*args: Any, **kwargs: Any) -> str:
            self.guard.format(fmt, args, kwargs)
            return str(self.guard.result(wrapped(*args, **kwargs)))

        return guarded

    def render(self, source: str, scope: Mapping[str, Any]) -> str:
        """The text of a template, streamed and stopped at the size and time bounds."""
        parts: list[str] = []
        size = 0
        for chunk in self.from_string(source).generate(scope):
            size += len(chunk)
            self.guard.size(size)
            self.guard.tick()
            parts.append(chunk)
        return "".join(parts)

    def evaluate(self, expression: str, scope: Mapping[str, Any]) -> Any:
        """An expression's value (not its text)."""
        return self.compile_expression(expression, undefined_to_none=False)(**scope)


@contextmanager
def refusals(what: str) -> Iterator[None]:
    """Turn whatever a render raises into one InputError that starts with `what`."""
    try:
        yield
    except ChinwagError:
        raise
    except Refused as exc:
        raise InputError(f"{what} {exc}.") from None
    except SecurityError as exc:
        raise InputError(f"{what} tried something unsafe: {exc}.") from None
    except TemplateError as exc:
        raise InputError(f"{what} failed to render: {exc}.") from None
    except RecursionError:
        raise InputError(f"{what} nests too deeply (a macro calling itself?).") from None
    except MemoryError:
        raise InputError(f"{what} ran out of memory; make it build less.") from None
    except Exception as exc:  # anything the template's own code raised: 1/0, 'a' + 1, ...
        raise InputError(f"{what} failed to render: {type(exc).__name__}: {exc}.") from None
