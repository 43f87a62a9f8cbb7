"""Rendering a ``shell`` command so that values can never turn into shell code.

``command: "grep {{ workload.pattern }} {{ workload.file }}"`` pastes values into a string that
``/bin/sh -c`` parses. Each ``{{ ... }}`` output is therefore shell-quoted (``shlex.quote``): a
pattern of ``x; rm -rf ~`` stays one argument. A value meant to be shell code opts out with the
``unquoted`` filter (``{{ workload.pipeline | unquoted }}``). A command that is one expression
and nothing else (``command: "{{ workload.script }}"``) is the script itself and is not quoted.

Values can also avoid the shell entirely: ``args:`` (a list, each item exactly one argument, run
without a shell) and ``env:`` (variables the command reads as ``"$NAME"``).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from noetl.dsl.render import RenderContext, is_template, render_data, render_value
from noetl.dsl.render_env import ENV
from noetl.dsl.render_jinja import render_with
from noetl.dsl.shellcode import ShellCode, shell_text


def _quote_output(value: Any) -> str:
    return value if isinstance(value, ShellCode) else shlex.quote(shell_text(value))


_QUOTING_ENV = ENV.overlay(finalize=_quote_output)


@lru_cache(maxsize=1024)
def _compile(source: str) -> Any:
    return _QUOTING_ENV.from_string(source)


def render_command(source: Any, context: Mapping[str, Any], *, where: str) -> Any:
    """One command string, each pasted value shell-quoted; a lone expression gives its value."""
    if not isinstance(source, str) or not is_template(source):
        return source
    if source.strip().startswith("{{") and source.strip().endswith("}}") and source.count("{{") == 1:
        return render_value(source, context, where=where)  # the whole command is the value

    def render() -> str:
        template = _compile(source)
        scope = RenderContext(context, ENV.globals)
        return "".join(template.root_render_func(template.new_context(scope, shared=True)))

    return render_with(render, source, where=where)  # bounded, with warnings, like any render


def render_commands(config: dict[str, Any], context: Mapping[str, Any], *, step: str) -> dict[str, Any]:
    """``config`` with ``command`` and ``cmds`` rendered for the shell."""
    rendered = dict(config)
    if "command" in rendered:
        rendered["command"] = render_command(rendered["command"], context, where=f"step {step!r} command")
    cmds = rendered.get("cmds")
    if isinstance(cmds, list):
        rendered["cmds"] = [render_command(c, context, where=f"step {step!r} cmds[{i}]") for i, c in enumerate(cmds)]
    elif isinstance(cmds, str):  # one command, or one expression giving the list
        rendered["cmds"] = render_command(cmds, context, where=f"step {step!r} cmds")
    elif cmds is not None:
        rendered["cmds"] = render_data(cmds, context, where=f"step {step!r} cmds")
    return rendered
