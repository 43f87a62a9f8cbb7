"""Checks of a `transfer` task before anything runs: source and target, their types, the mode."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from noetl.dsl.render import is_template
from noetl.dsl.suggest import suggest

if TYPE_CHECKING:
    from noetl.dsl.check import Checker

TRANSFER_SOURCE_TYPES = ("postgres", "duckdb", "http")
TRANSFER_TARGET_TYPES = ("postgres", "duckdb")
TRANSFER_MODES = ("insert", "upsert", "replace")
TYPE_ALIASES = {"postgresql": "postgres", "pg": "postgres"}


def check_transfer(checker: Checker, task: dict[str, Any], path: tuple[Any, ...], label: str) -> None:
    for side, types in (("source", TRANSFER_SOURCE_TYPES), ("target", TRANSFER_TARGET_TYPES)):
        value = task.get(side)
        if not isinstance(value, dict):
            checker.error(path, f"{label}: transfer needs `{side}:` (a mapping with `type:`)")
            continue
        kind = value.get("type", value.get("kind"))
        if is_template(kind):
            continue
        if TYPE_ALIASES.get(str(kind).lower(), str(kind).lower()) not in types:
            checker.error((*path, side, "type"), f"{label}: unknown transfer {side} type {kind!r} "
                          f"(supported: {', '.join(types)}){suggest(str(kind), frozenset(types))}")
    source, target = task.get("source"), task.get("target")
    if isinstance(source, dict):
        _check_source(checker, source, (*path, "source"), label)
    if isinstance(target, dict):
        _check_target(checker, target, (*path, "target"), label)
    chunk_size = task.get("chunk_size")
    if chunk_size is not None and not is_template(chunk_size) and (
            isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1):
        checker.error((*path, "chunk_size"), f"{label}: transfer `chunk_size` must be a positive integer, "
                      f"not {chunk_size!r}")


def _check_source(checker: Checker, source: dict[str, Any], path: tuple[Any, ...], label: str) -> None:
    kind = str(source.get("type", source.get("kind"))).lower()
    if kind == "http" and not (source.get("url") or source.get("endpoint")):
        checker.error(path, f"{label}: an http transfer source needs `url`")
    elif kind in ("postgres", "postgresql", "pg", "duckdb") and not any(
            source.get(k) for k in ("query", "sql", "command")):
        checker.error(path, f"{label}: a {kind} transfer source needs `query`")


def _check_target(checker: Checker, target: dict[str, Any], path: tuple[Any, ...], label: str) -> None:
    if not target.get("table"):
        checker.error(path, f"{label}: a transfer target needs `table`")
    mode = target.get("mode", "insert")
    if is_template(mode):
        return
    if str(mode).lower() not in TRANSFER_MODES:
        checker.error((*path, "mode"), f"{label}: transfer target mode {mode!r} is not supported "
                      f"({', '.join(TRANSFER_MODES)}){suggest(str(mode), frozenset(TRANSFER_MODES))}")
    elif str(mode).lower() == "upsert" and not (target.get("key") or target.get("keys")):
        checker.error((*path, "mode"), f"{label}: a transfer with mode upsert needs `key` "
                      "(the conflict column or columns)")
    mapping = target.get("mapping")
    if mapping is not None and not is_template(mapping) and (not isinstance(mapping, dict) or not mapping):
        checker.error((*path, "mapping"), f"{label}: transfer `mapping` must be a non-empty "
                      "{target_column: source_field} mapping")
