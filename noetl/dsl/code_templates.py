"""``{{ ... }}`` inside python ``code``: found for `noetl validate`, rewritten by `noetl migrate`.

Python code is never rendered (values reach it through ``input``), but playbooks written for
engines that rendered code before running it write ``x = {{ temp }}`` or ``city = '{{ city }}'``.
Those templates would stay literal text here, so validation warns about them and migration turns
each one into an ``input`` binding with the same meaning:

- outside a string, ``{{ expr }}`` becomes a name bound to ``"{{ expr }}"`` (the native value, as
  rendering the number or list into the source and parsing it back gave);
- inside a string literal, the template becomes ``str(name)`` spliced into the literal
  (``'Hello {{ who }}!'`` → ``('Hello ' + str(who) + '!')``), the text rendering produced.

Code with ``{% ... %}`` statements, or templates inside bytes or f-strings, is left as it is.
"""

from __future__ import annotations

import io
import re
import tokenize
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

_DOTTED_NAME = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_STRING_PREFIX = re.compile(r"^([A-Za-z]*)('''|\"\"\"|'|\")", re.S)


def _templates(text: str) -> Iterator[tuple[int, int, str]]:
    """(start, end, inner text) of each ``{{ ... }}`` in ``text``, the non-greedy matches a regex finds,
    but in linear time: that regex looks for a closing ``}}`` from every ``{{``, so code full of
    unclosed ``{{`` cost time quadratic in its size (minutes for a few hundred KB)."""
    position = 0
    while (start := text.find("{{", position)) >= 0:
        close = text.find("}}", start + 2)
        if close < 0:
            return  # no later `{{` is closed either
        yield start, close + 2, text[start + 2:close]
        position = close + 2


def template_expressions(code: str) -> list[str]:
    """The expressions of the ``{{ ... }}`` in ``code``, in order (stripped)."""
    return [inner.strip() for _, _, inner in _templates(code)]


def root_name(expression: str) -> str | None:
    """``city`` for ``city``, ``fetch.data.temp`` or ``fetch.data.temp | int``; None otherwise."""
    head = re.match(r"^([A-Za-z_]\w*)", expression)
    return head.group(1) if head else None


@dataclass(slots=True)
class _Bindings:
    existing: dict[str, Any]
    known: frozenset[str] | set[str]  # only templates of these root names are rewritten
    added: dict[str, str] = field(default_factory=dict)
    counter: int = 0
    used: bool = False  # some template was rewritten

    def rewrites(self, expression: str) -> bool:
        return root_name(expression) in self.known

    def name_for(self, expression: str) -> str:
        self.used = True
        template = "{{ " + expression + " }}"
        for name, value in {**self.existing, **self.added}.items():
            if value == template:
                return name
        base = expression.replace(".", "_") if _DOTTED_NAME.match(expression) else "value"
        name = base
        while name in self.existing or name in self.added or name == "value":
            self.counter += 1
            name = f"{base}_{self.counter}"
        self.added[name] = template
        return name


def unrender_code(code: str, existing_input: dict[str, Any],
                  known: frozenset[str] | set[str]) -> tuple[str, dict[str, str]] | None:
    """``code`` with its templates of ``known`` names replaced by input names, and the bindings to
    add to ``input``; None when there is nothing to rewrite or it cannot be rewritten faithfully."""
    if "{{" not in code or "{%" in code:
        return None
    spans = _string_spans(code)
    if spans is None:
        return None
    bindings = _Bindings(existing=dict(existing_input), known=known)
    parts: list[str] = []
    position = 0
    for start, end, is_comment in spans:
        parts.append(_replace_bare(code[position:start], bindings))
        literal = code[start:end]
        rewritten = _replace_in_string(literal, bindings) if "{{" in literal and not is_comment else literal
        if rewritten is None:
            return None
        parts.append(rewritten)
        position = end
    parts.append(_replace_bare(code[position:], bindings))
    if not bindings.used:
        return None
    return "".join(parts), bindings.added


def _replace_bare(text: str, bindings: _Bindings) -> str:
    parts: list[str] = []
    position = 0
    for start, end, inner in _templates(text):
        expression = inner.strip()
        parts.append(text[position:start])
        parts.append(bindings.name_for(expression) if bindings.rewrites(expression) else text[start:end])
        position = end
    parts.append(text[position:])
    return "".join(parts)


def _replace_in_string(literal: str, bindings: _Bindings) -> str | None:
    head = _STRING_PREFIX.match(literal)
    if head is None:
        return None
    prefix, quote = head.group(1), head.group(2)
    if any(flag in prefix.lower() for flag in "bf"):
        return None  # bytes and f-strings: `{{` means something else there
    body = literal[len(prefix) + len(quote):len(literal) - len(quote)]
    pieces: list[str] = []
    position = 0
    for start, end, inner in _templates(body):
        if not bindings.rewrites(inner.strip()):
            continue  # stays inside the literal piece around it
        if start > position:
            pieces.append(f"{prefix}{quote}{body[position:start]}{quote}")
        pieces.append(f"str({bindings.name_for(inner.strip())})")
        position = end
    if position < len(body):
        pieces.append(f"{prefix}{quote}{body[position:]}{quote}")
    return pieces[0] if len(pieces) == 1 else "(" + " + ".join(pieces) + ")"


def _string_spans(code: str) -> list[tuple[int, int, bool]] | None:
    """(start, end, is_comment) offsets of every string literal and comment; None when the code
    does not tokenize."""
    line_starts = [0]
    for line in code.splitlines(keepends=True):
        line_starts.append(line_starts[-1] + len(line))
    spans: list[tuple[int, int, bool]] = []
    try:
        for token in tokenize.generate_tokens(io.StringIO(code).readline):
            if token.type in (tokenize.STRING, tokenize.COMMENT):
                start = line_starts[token.start[0] - 1] + token.start[1]
                end = line_starts[token.end[0] - 1] + token.end[1]
                spans.append((start, end, token.type == tokenize.COMMENT))
            elif token.type not in (tokenize.OP, tokenize.NAME, tokenize.NUMBER, tokenize.NEWLINE, tokenize.NL,
                                    tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER):
                return None  # e.g. the f-string tokens of newer Pythons
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return None
    return spans


# --------------------------------------------------------------------------------------------------
# Validation: which templates in python code name something the render context has

BUILTIN_NAMES = frozenset({"workload", "ctx", "vars", "execution_id", "job", "iter", "loop", "_loop", "loop_index", "input", "secret",
                           "keychain", "output", "outcome", "result", "event", "error", "response", "_prev", "args"})


def context_names(doc: dict[str, Any]) -> set[str]:
    """Names a template may read in this (canonical) playbook: workload keys, steps, `set` keys,
    loop iterators, named tasks and the built-ins."""
    names = set(BUILTIN_NAMES) | set(doc.get("workload") or {})
    for step in doc.get("workflow") or []:
        if not isinstance(step, dict):
            continue
        names.add(str(step.get("step")))
        names.update(_set_names(step.get("set")))
        loop = step.get("loop")
        if isinstance(loop, dict):
            names.add(str(loop.get("iterator") or "item"))
        for arc in (step.get("next") or {}).get("arcs") or []:
            if isinstance(arc, dict):
                names.update(_set_names(arc.get("set")))
        for task in step.get("tool") or []:
            if isinstance(task, dict):
                names.update(_set_names(task.get("set")))
                if task.get("name"):
                    names.add(str(task["name"]))
    return names


def _set_names(updates: Any) -> set[str]:
    if not isinstance(updates, dict):
        return set()
    return {str(key).removeprefix("ctx.").removeprefix("vars.").split(".")[0] for key in updates}


def python_code_warnings(doc: dict[str, Any], raw: dict[str, Any] | None = None) -> list[tuple[tuple[Any, ...], str]]:
    """(path, message) for each python task whose code holds ``{{ name }}`` of a context name.
    ``raw`` (the document as written) places the warning on an older form's `code:` line."""
    known = context_names(doc)
    found: list[tuple[tuple[Any, ...], str]] = []
    for i, step in enumerate(doc.get("workflow") or []):
        tasks = (step.get("tool") if isinstance(step, dict) else None) or []
        for j, task in enumerate(tasks):
            if not isinstance(task, dict) or task.get("kind") != "python" or not isinstance(task.get("code"), str):
                continue
            named = [e for e in template_expressions(task["code"]) if root_name(e) in known]
            if named:
                path = ("workflow", i, "tool", j, "code") if len(tasks) > 1 else ("workflow", i, "tool", "code")
                found.append((_as_written(raw, path), _message(step.get("step"), named)))
    return found


def _as_written(raw: dict[str, Any] | None, path: tuple[Any, ...]) -> tuple[Any, ...]:
    """The raw document's path of a canonical task's `code` (v1 steps carry it on the step)."""
    workflow = raw.get("workflow") if isinstance(raw, dict) else None
    step = workflow[path[1]] if isinstance(workflow, list) and path[1] < len(workflow) else None
    if isinstance(step, dict) and "code" in step and "tool" not in step:
        return ("workflow", path[1], "code")
    return path


def _message(step: Any, expressions: list[str]) -> str:
    first = expressions[0]
    name = first.replace(".", "_") if _DOTTED_NAME.match(first) else "value"
    return (f"step {step!r}: python code is never rendered, so {{{{ {first} }}}} stays as written; pass the value "
            f"through `input: {{{name}: \"{{{{ {first} }}}}\"}}` and use `{name}` in the code "
            f"({_also(expressions)}`noetl migrate` rewrites it so)")


def _also(expressions: list[str]) -> str:
    """The code's other templates of context names, each once, so that one warning names them all."""
    others = list(dict.fromkeys(e for e in expressions[1:] if e != expressions[0]))
    return f"likewise {', '.join('{{ ' + e + ' }}' for e in others)}; " if others else ""
