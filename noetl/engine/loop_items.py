"""A loop's `where`, `order_by`, `limit` and `chunk` (the v1 iterator's controls): which elements
of the rendered collection run, in which order, one by one or in lists of `chunk`. Applied once as the loop starts; the chosen elements are
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
    by the loop's iterator name and as ``iter.<name>``. ``chunk: N`` then groups them into lists of
    N, each list one iteration."""
    if loop.where is None and loop.order_by is None and loop.limit is None and loop.chunk is None:
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
        items = items[:_count(loop.limit, context, step, "limit")]
    if loop.chunk is not None:
        size = _count(loop.chunk, context, step, "chunk") or 1
        items = [items[start:start + size] for start in range(0, len(items), size)]
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


def _count(value: int | str, context: RenderContext, step: str, field: str) -> int:
    rendered = render_data(value, context, where=f"step {step!r} loop.{field}") if isinstance(value, str) else value
    try:
        count = int(rendered)
    except (TypeError, ValueError):
        raise TemplateError(f"step {step!r} loop.{field}: expected a whole number, got {rendered!r}",
                            field=f"loop.{field}") from None
    if count < 0:
        raise TemplateError(f"step {step!r} loop.{field}: must be at least 0, got {count}", field=f"loop.{field}")
    return count
