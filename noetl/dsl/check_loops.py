"""Checks of a step's `loop`: a list loop needs `in:`, a cursor loop a `cursor` with a claim."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from noetl.dsl.suggest import suggest

if TYPE_CHECKING:
    from noetl.dsl.check import Checker

CURSOR_KINDS = ("postgres",)
CURSOR_KEYS = frozenset({"kind", "auth", "credential", "connection", "claim", "params", "desc", "description"})
FRAME_KEYS = frozenset({"max_rows", "max_seconds", "max_bytes", "lease_seconds", "heartbeat_seconds",
                        "row_concurrency", "process"})
FRAME_PROCESS = ("row", "frame")
_FRAME_INTEGERS = ("max_rows", "max_bytes", "row_concurrency")
_FRAME_SECONDS = ("max_seconds", "lease_seconds", "heartbeat_seconds")


def check_loop(checker: Checker, loop: Any, path: tuple[Any, ...], label: str) -> None:
    where = (*path, "loop")
    if not isinstance(loop, dict):
        checker.error(where, f"{label}: `loop` must be a mapping with `in:` (or `cursor:`)")
        return
    spec: dict[str, Any] = loop["spec"] if isinstance(loop.get("spec"), dict) else {}
    mode = spec.get("mode")
    if loop.get("cursor") is None:
        if mode == "cursor":
            checker.error((*where, "spec", "mode"), f"{label}: `spec.mode: cursor` needs `loop.cursor` "
                          "(kind: postgres, auth, claim)")
        elif "in" not in loop:
            checker.error(where, f"{label}: `loop` needs `in:` (a list or a template), or `cursor:` for a "
                          "cursor loop")
        return
    if "in" in loop:
        checker.error((*where, "in"), f"{label}: `loop` has both `in:` and `cursor:`; keep one")
    if mode not in (None, "cursor"):
        checker.error((*where, "spec", "mode"), f"{label}: a cursor loop runs with `spec.mode: cursor`, "
                      f"not {mode!r}")
    _check_cursor(checker, loop["cursor"], (*where, "cursor"), label)
    if "frame" in spec:
        _check_frame(checker, spec["frame"], (*where, "spec", "frame"), label)


def _check_cursor(checker: Checker, cursor: Any, path: tuple[Any, ...], label: str) -> None:
    if not isinstance(cursor, dict):
        checker.error(path, f"{label}: `loop.cursor` must be a mapping (kind: postgres, auth, claim)")
        return
    kind = cursor.get("kind", "postgres")
    if kind not in CURSOR_KINDS:
        checker.error((*path, "kind"), f"{label}: unknown cursor kind {kind!r} (supported: "
                      f"{', '.join(CURSOR_KINDS)}){suggest(str(kind), frozenset(CURSOR_KINDS))}")
    claim = cursor.get("claim")
    if not isinstance(claim, str) or not claim.strip():
        checker.error(path, f"{label}: a cursor loop needs `cursor.claim`: SQL that claims rows "
                      "(... FOR UPDATE SKIP LOCKED ... RETURNING ...)")
    if not any(cursor.get(key) for key in ("auth", "credential", "connection")):
        checker.error(path, f"{label}: `loop.cursor` needs `auth` (a credential name) or `connection`")
    for key in cursor:
        if key not in CURSOR_KEYS:
            checker.warn((*path, key), f"unknown key {key!r} in loop.cursor{suggest(str(key), CURSOR_KEYS)}")


def _check_frame(checker: Checker, frame: Any, path: tuple[Any, ...], label: str) -> None:
    if not isinstance(frame, dict):
        checker.error(path, f"{label}: `spec.frame` must be a mapping")
        return
    for key, value in frame.items():
        if key not in FRAME_KEYS:
            checker.warn((*path, key), f"unknown key {key!r} in spec.frame{suggest(str(key), FRAME_KEYS)}")
        elif key == "process":
            if value not in FRAME_PROCESS:
                checker.error((*path, key), f"{label}: `spec.frame.process` must be row or frame, not {value!r}")
        elif not _positive(value, integer=key in _FRAME_INTEGERS):
            what = "a positive integer" if key in _FRAME_INTEGERS else "a positive number of seconds"
            checker.error((*path, key), f"{label}: `spec.frame.{key}` must be {what}, not {value!r}")


def _positive(value: Any, *, integer: bool) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return value > 0 and (not integer or isinstance(value, int))
