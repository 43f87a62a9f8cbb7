"""`noetl validate`, `noetl migrate` and `noetl schema`: the playbook DSL without running anything."""

from __future__ import annotations

import sys
from typing import Any

import click

from noetl.cli.app import EXIT_INVALID, cli, handle_errors, print_json


@cli.command()
@click.argument("files", nargs=-1, required=True)
@click.option("--strict", is_flag=True, help="Unknown keys are errors, not warnings.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@handle_errors
def validate(files: tuple[str, ...], strict: bool, as_json: bool) -> None:
    """Check playbooks; errors as file:line:col: message. Exit 2 on any error."""
    from noetl.api import validate_playbook

    failed = False
    report: dict[str, Any] = {}
    for file in files:
        problems = validate_playbook(file)
        blocking = [p for p in problems if p.severity == "error" or (strict and p.severity == "warning")]
        failed = failed or bool(blocking)
        report[file] = [p.to_dict() for p in problems]
        if not as_json:
            for problem in problems:
                severity = "error" if problem in blocking else problem.severity
                click.echo(f"{problem.where}: {severity}: {problem.message}", err=severity != "note")
            if not blocking:
                click.echo(f"{file}: ok")
    if as_json:
        print_json(report)
    sys.exit(EXIT_INVALID if failed else 0)


@cli.command()
@click.argument("file")
@handle_errors
def migrate(file: str) -> None:
    """Print the canonical form of a v1 / case-era playbook."""
    from noetl.dsl.migrate import canonical_yaml
    from noetl.dsl.parse import load_playbook

    loaded = load_playbook(file)
    loaded.require()
    click.echo(canonical_yaml(loaded), nl=False)


@cli.command()
def schema() -> None:
    """Print the JSON Schema of the playbook DSL (for editors' YAML plugins)."""
    from noetl.dsl.schema import playbook_schema

    print_json(playbook_schema())
