"""Plain records of the playbook models: what a run uses without pydantic.

The pydantic models of :mod:`noetl.dsl.model` stay the one description of the DSL. A
:class:`Record` of a model (what the cache of validated playbooks rebuilds: the model's field
values, extra fields and set fields, as validation left them) has the model's fields and, through
:mod:`noetl.dsl.behaviour`, its methods. Importing pydantic and building the model classes is about
40 % of the instructions of a short `noetl run`; a playbook run again from the cache needs neither.
Any other pydantic API on a record (``model_dump``, ``model_copy``, ...) is the model's: the record
is turned into the model (``model_construct``, not validated again) on first such use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from noetl.dsl.behaviour import BEHAVIOUR, Shape

if TYPE_CHECKING:
    from pydantic import BaseModel


class Record(Shape):
    """A playbook model's values without the model: fields as attributes (in ``__dict__``, in the
    model's field order), extra fields in ``__pydantic_extra__``, as on the model."""

    __slots__ = ("__dict__", "__pydantic_extra__", "_fields_set", "_model")
    __hash__ = None  # type: ignore[assignment]  # as a model's: its fields can change

    def __init__(self, fields: dict[str, Any], extra: dict[str, Any] | None, fields_set: list[str]) -> None:
        self.__dict__.update(fields)
        self.__pydantic_extra__ = extra
        self._fields_set = fields_set
        self._model: BaseModel | None = None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("model_"):
            return getattr(self.as_model(), name)
        extra = object.__getattribute__(self, "__pydantic_extra__")
        if extra and name in extra:
            return extra[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def as_model(self) -> BaseModel:
        """The pydantic model this is a record of (built once; its nested models too)."""
        if self._model is None:
            from noetl.dsl import model

            cls: type[BaseModel] = getattr(model, type(self).__name__)
            values = {name: _as_model(value) for name, value in self.__dict__.items()}
            self._model = cls.model_construct(_fields_set=set(self._fields_set), **values,
                                              **(self.__pydantic_extra__ or {}))
        return self._model

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Record):
            return type(self) is type(other) and self.__dict__ == other.__dict__ \
                and self.__pydantic_extra__ == other.__pydantic_extra__
        if isinstance(other, Shape):
            return self.as_model() == other
        return NotImplemented

    def __repr__(self) -> str:
        values = {**self.__dict__, **(self.__pydantic_extra__ or {})}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in values.items())})"

    def __reduce__(self) -> tuple[Any, ...]:
        return record, (type(self).__name__, dict(self.__dict__), self.__pydantic_extra__, list(self._fields_set))


def _as_model(value: Any) -> Any:
    if isinstance(value, Record):
        return value.as_model()
    if isinstance(value, list):
        return [_as_model(item) for item in value]
    return value


_RECORD_CLASSES: dict[str, type[Record]] = {}


def record(name: str, fields: dict[str, Any], extra: dict[str, Any] | None, fields_set: list[str]) -> Record:
    """A record of the model class called ``name`` (with that model's behaviour)."""
    cls = _RECORD_CLASSES.get(name)
    if cls is None:
        bases = (Record, BEHAVIOUR[name]) if name in BEHAVIOUR else (Record,)
        cls = _RECORD_CLASSES[name] = type(name, bases, {"__slots__": (), "__module__": __name__})
    return cls(fields, extra, fields_set)
