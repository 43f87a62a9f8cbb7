"""A loop's `where`, `order_by` and `limit` (the v1 iterator's controls): which elements of the
rendered collection run, in which order. Applied once as the loop starts; the chosen elements are
what the step's `step.enter` event records, so a replay never evaluates them again."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from noetl.dsl.render import RenderContext, evaluate_when, render_data
from noetl.errors import TemplateError

if TYPE_CHECKING:
    from noetl.dsl.model import Loop


def select_items(items: list[Any], loop: Loop, context: RenderContext, step: str) -> list[Any]:
    """``where`` keeps the elements it is true for, ``order_by`` sorts them by its value (stable;
    elements whose key is null go last), ``limit`` keeps the first N. Each template sees the element
    by the loop's iterator name and as ``iter.<name>``."""
    if loop.where is None and loop.order_by is None and loop.limit is None:
        return items

    def element_context(item: Any) -> RenderContext:
        return context.child({loop.iterator: item, "iter": {loop.iterator: item}})

    if loop.where is not None:
        where = loop.where
        items = [item for item in items
                 if evaluate_when(where, element_context(item), where=f"step {step!r} loop.where")]
    if loop.order_by is not None:
        items = _sorted(items, loop.order_by, element_context, step)
    if loop.limit is not None:
        items = items[:_limit(loop.limit, context, step)]
    return items


def _sorted(items: list[Any], order_by: str, element_context: Any, step: str) -> list[Any]:
    keys = [render_data(order_by, element_context(item), where=f"step {step!r} loop.order_by") for item in items]
    order = sorted(range(len(items)), key=lambda i: (keys[i] is None, 0 if keys[i] is None else keys[i], i)) \
        if _comparable(keys) else None
    if order is None:
        kinds = sorted({type(k).__name__ for k in keys if k is not None})
        raise TemplateError(f"step {step!r} loop.order_by: the keys cannot be ordered ({' and '.join(kinds)})",
                            field="loop.order_by")
    return [items[i] for i in order]


def _comparable(keys: list[Any]) -> bool:
    present = [k for k in keys if k is not None]
    try:
        sorted(present)
    except TypeError:
        return False
    return True


def _limit(limit: int | str, context: RenderContext, step: str) -> int:
    value = render_data(limit, context, where=f"step {step!r} loop.limit") if isinstance(limit, str) else limit
    try:
        count = int(value)
    except (TypeError, ValueError):
        raise TemplateError(f"step {step!r} loop.limit: expected a whole number, got {value!r}",
                            field="loop.limit") from None
    if count < 0:
        raise TemplateError(f"step {step!r} loop.limit: must be at least 0, got {count}", field="loop.limit")
    return count
