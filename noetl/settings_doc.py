"""docs/settings.md: every NOETL_* variable, generated from the :class:`~noetl.settings.Settings`
fields so the page cannot drift from the code (tests/unit/test_settings.py compares them).

    python -m noetl.settings_doc > docs/settings.md
"""

from __future__ import annotations

from dataclasses import MISSING, Field, fields

from noetl.settings import Settings, variable_name

INTRODUCTION = """\
# Settings

NoETL reads its settings from `NOETL_*` environment variables, each time a command or a tool needs
them (so a variable set in a running shell or by a test takes effect on the next use). An empty
value means unset. A value of the wrong type stops the command with one line naming the variable,
exit code 2, e.g. `error: NOETL_MAX_ATTEMPTS must be an integer, got 'three'`; booleans accept
`true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`. A value on the command line (`--server-url`,
`--token`, `--concurrency`, `--lease-seconds`, `--database-url`) wins over its variable.
Variables that hold secrets are redacted from logs, events, results and errors
([security](security.md)). Which process needs which variable in a deployment:
[operations](operations.md#settings).

This page is generated from `noetl/settings.py` (`python -m noetl.settings_doc > docs/settings.md`).

| variable | type | default | meaning |
|---|---|---|---|
"""

TYPE_NAMES = {"str": "string", "str | None": "string", "int": "integer", "bool": "boolean", "Path": "path",
              "Path | None": "path", "tuple[Path, ...]": "paths, `:`-separated"}


def default_text(setting: Field) -> str:  # type: ignore[type-arg]
    if setting.name == "home":
        return "`~/.noetl`"
    if setting.default is MISSING or setting.default is None or setting.default == ():
        return "unset"
    if isinstance(setting.default, bool):
        return f"`{str(setting.default).lower()}`"
    return f"`{setting.default}`"


def render() -> str:
    rows = [f"| `{variable_name(setting.name)}` | {TYPE_NAMES[str(setting.type)]} | {default_text(setting)} | "
            f"{setting.metadata['doc']} |" for setting in fields(Settings)]
    return INTRODUCTION + "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(render(), end="")
