"""The pure parts of results by reference: the `output:` block, slices, and lazy references."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from noetl.dsl.render import RenderContext, render_value
from noetl.errors import InputError, ToolError
from noetl.results import refs
from noetl.results.refs import is_ref, make_ref, materialize, results_held, use_loader
from noetl.results.spec import DEFAULT_INLINE_MAX_BYTES, apply_select, output_spec
from noetl.results.storage import ResultStorage
from noetl.settings import Settings
from noetl.store.memory import MemoryStore

BLOBS: dict[str, Any] = {"noetl://result/1": {"count": 2, "data": {"rows": [{"id": "a"}, {"id": "b"}]}}}
LOADS: list[str] = []


@pytest.fixture(autouse=True)
def _own_loader() -> Any:
    """The loader these tests install is gone afterwards (it knows only BLOBS)."""
    saved = list(refs._fallback)
    token = use_loader(_loader)
    yield
    refs._loader.reset(token)
    refs._fallback[:] = saved


def _loader(uri: str, fresh: bool) -> Any:
    LOADS.append(uri)
    return BLOBS[uri]


def _ref(**inline: Any) -> dict[str, Any]:
    return {**make_ref(uri="noetl://result/1", size=99, sha256="0" * 64, preview="{...}"), **inline}


def test_output_block_defaults_and_spellings() -> None:
    assert output_spec(None).inline_max_bytes == DEFAULT_INLINE_MAX_BYTES == 65536
    spec = output_spec({"store": {"kind": "disk", "ttl": "2h"}, "output_select": ["status", "count"],
                        "inline_max_bytes": 10, "select": {"path": "data.items", "as": "items"}})
    assert (spec.kind, spec.ttl_seconds, spec.keep, spec.inline_max_bytes) == ("disk", 7200.0, ("status", "count"), 10)
    assert output_spec({"store": "db"}).kind == "db"
    assert output_spec({"store": {"ttl": 30}}).ttl_seconds == 30.0


@pytest.mark.parametrize(("block", "message"), [
    ({"store": {"kind": "tape"}}, "output.store.kind: 'tape' is not one of auto, memory, disk, db, s3"),
    ({"store": {"ttl": "soon"}}, "output.store.ttl: expected seconds or a duration"),
    ({"inline_max_bytes": -1}, "output.inline_max_bytes: expected a number of bytes"),
    ({"select": {"as": "x"}}, "output.select: expected {path: data.items, as: items}"),
    ({"output_select": [1]}, "output.output_select: expected a list of field names"),
])
def test_a_bad_output_block_names_the_field(block: dict[str, Any], message: str) -> None:
    with pytest.raises(ToolError, match=message.replace("{", r"\{").replace("}", r"\}")):
        output_spec(block)


def test_select_keeps_a_slice() -> None:
    result = {"data": {"items": [1, 2, 3], "meta": {"n": 3}}}
    assert apply_select(result, output_spec({"select": {"path": "data.items"}}).select) == [1, 2, 3]
    assert apply_select(result, output_spec({"select": {"path": "data.items", "as": "xs"}}).select) == {"xs": [1, 2, 3]}
    both = output_spec({"select": [{"path": "data.items.0", "as": "first"}, {"path": "data.meta.n"}]}).select
    assert apply_select(result, both) == {"first": 1, "n": 3}
    assert apply_select(result, output_spec({"select": "data.missing.x"}).select) is None


def test_templates_read_inline_fields_without_loading_and_the_rest_through_the_reference() -> None:
    LOADS.clear()
    context = RenderContext({"big": _ref(count=2), "agg": {"results": [_ref()]}})
    assert render_value("{{ big.count }}", context) == 2
    assert render_value("{{ big._ref.size }}", context) == 99
    assert LOADS == []
    assert render_value("{{ big.data.rows[1].id }}", context) == "b"
    assert render_value("{{ agg.results[0].data.rows | length }}", context) == 2
    assert render_value("{{ big['data']['rows'][0]['id'] }}", context) == "a"
    assert LOADS == ["noetl://result/1"] * 3
    assert is_ref(render_value("{{ big }}", context))  # a whole reference passes on as the reference


def test_one_task_configuration_decodes_each_result_it_reads_once() -> None:
    # The fields of one task's configuration render one by one: held, a big result (too big for the
    # storage's cache) is decoded once for all of them instead of once per field.
    from noetl.dsl.render import render_data

    config = {"a": "{{ big.data.rows[0].id }}", "b": "{{ big.data.rows[1].id }}", "n": "{{ big.count }}"}
    LOADS.clear()
    with results_held():
        assert render_data(config, RenderContext({"big": _ref(count=2)})) == {"a": "a", "b": "b", "n": 2}
        assert render_value("{{ big.data.rows | length }}", RenderContext({"big": _ref()})) == 2
    assert LOADS == ["noetl://result/1"]
    render_data(config, RenderContext({"big": _ref(count=2)}))  # outside: nothing kept
    assert LOADS == ["noetl://result/1"] * 3


def test_a_step_whose_inputs_read_one_big_result_three_times_decodes_it_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from noetl.api import run_playbook

    reads: list[str] = []
    real_read = ResultStorage.read

    def counted(self: ResultStorage, uri: str, fresh: bool = False) -> Any:
        reads.append(uri)
        return real_read(self, uri, fresh)

    monkeypatch.setattr(ResultStorage, "read", counted)
    doc = run_playbook(
        "apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: r, path: t/r}\nworkflow:\n"
        "  - step: start\n    tool: {kind: python, code: \"result = {'rows': [{'i': i, 'pad': 'x' * 20} for i in range(100000)]}\"}\n"
        "    next: [{step: pick}]\n"
        "  - step: pick\n    tool:\n      kind: python\n"
        "      input: {a: '{{ start.rows[0].i }}', b: '{{ start.rows[1].i }}', c: '{{ start.rows[99999].i }}'}\n"
        "      code: 'result = [a, b, c]'\n",
        store_url="memory://",
    )
    assert doc["status"] == "completed", doc["error"]
    assert doc["result"] == [0, 1, 99999]
    assert doc["steps"]["start"]["result"]["_ref"]["size"] > 8 * 1024 * 1024 // 4  # past the storage's cache
    assert len(reads) == 1, reads


def test_materialize_replaces_references_and_leaves_the_rest_alone() -> None:
    plain = {"a": [1, {"b": 2}]}
    assert materialize(plain) is plain
    assert materialize({"x": [_ref()], "y": 1}) == {"x": [BLOBS["noetl://result/1"]], "y": 1}


class _Storage:
    """Records what shaping stores; every stored result gets a reference."""

    def __init__(self) -> None:
        self.stored: list[bytes] = []

    async def put(self, data: bytes, **_: Any) -> dict[str, Any]:
        self.stored.append(data)
        return make_ref(uri=f"noetl://result/{len(self.stored)}", size=len(data), sha256="0" * 64, preview="")


@pytest.mark.parametrize(("result", "limit", "by_ref"), [
    ("a text of thirty characters...", 10, True),  # short, but over a small inline_max_bytes
    (12345, 2, True),
    (1.5, 2, True),
    (True, 3, True),
    ("é" * 3, 8, False),  # JSON of 8 bytes: inline
    (7, 65536, False),
    (2**200, 30, True),  # an integer beyond 64 bits is measured: 61 digits
    (None, 65536, False),
])
def test_small_results_are_inline_only_within_inline_max_bytes(result: Any, limit: int, by_ref: bool) -> None:
    import asyncio

    from noetl.results.shape import shape_result

    storage = _Storage()
    spec = output_spec({"inline_max_bytes": limit})
    shaped = asyncio.run(shape_result(result, spec, storage, execution_id="e1", step="s"))  # type: ignore[arg-type]
    assert is_ref(shaped) is by_ref
    assert storage.stored == ([json.dumps(result, ensure_ascii=False).encode()] if by_ref else [])


class _RecordingS3:
    def __init__(self) -> None:
        self.keys: list[tuple[str, str]] = []

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803 (boto3's spelling)
        self.keys.append((Bucket, Key))
        return {"Body": io.BytesIO(b'{"ok": true}')}


@pytest.mark.parametrize("uri", ["s3://elsewhere/noetl/results/e/r.json", "s3://results/other/r.json",
                                 "s3://results/noetl/results/../../other/r.json"])
def test_an_s3_reference_outside_the_results_bucket_and_prefix_is_never_fetched(uri: str) -> None:
    storage = ResultStorage(MemoryStore(), settings=Settings(results_s3_bucket="results"))
    storage._s3_client = client = _RecordingS3()
    with pytest.raises(InputError, match="outside the results bucket"):
        storage.read(uri)
    assert client.keys == []
    assert storage.read("s3://results/noetl/results/e/r.json") == {"ok": True}
