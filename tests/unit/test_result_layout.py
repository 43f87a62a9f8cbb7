"""Big results read by their layout: a template that indexes into a big stored result decodes only
the slice it needs, the stored JSON stays byte for byte what it was, and a big decode happens on a
thread while the event loop goes on."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from noetl.dsl.render import RenderContext, render_value
from noetl.results import layout, refs
from noetl.results.codec import dumps
from noetl.results.encoded import EncodedList
from noetl.results.refs import LAYOUT_KEY, REF_KEY, materialize, use_loader
from noetl.results.shape import LAYOUT_MIN_BYTES, shape_result
from noetl.results.spec import output_spec
from noetl.results.storage import ResultStorage
from noetl.runtime.rendering import render_inline, render_on_thread
from noetl.secrets import Redactor
from noetl.settings import Settings
from noetl.store.memory import MemoryStore
from noetl.store.sqlite.store import SqliteStore

ROWS = [{"id": i, "h": f"{i:032x}", "note": "é \"q\" \\ \n"} for i in range(60_000)]  # about 4.4 MB of JSON


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ResultStorage]:
    home = tmp_path_factory.mktemp("layout")
    store = SqliteStore(home / "noetl.db")
    asyncio.run(store.open())
    results = ResultStorage(store, settings=Settings(home=home))
    yield results
    asyncio.run(store.close())


@pytest.fixture(autouse=True)
def _loaders(storage: ResultStorage) -> Iterator[list[tuple[int, int]]]:
    """The storage's loaders for this test; yields the byte ranges read piece by piece."""
    pieces: list[tuple[int, int]] = []

    def read_piece(uri: str, start: int, end: int) -> bytes:
        pieces.append((start, end))
        return storage.read_piece(uri, start, end)

    saved = (list(refs._fallback), list(refs._items_fallback), list(refs._bytes_fallback))
    token = use_loader(storage.read, storage.read_items, read_piece)
    yield pieces
    refs._loader.reset(token)
    refs._fallback[:], refs._items_fallback[:], refs._bytes_fallback[:] = saved


def _stored(storage: ResultStorage, result: Any, redactor: Redactor | None = None) -> dict[str, Any]:
    ref: dict[str, Any] = asyncio.run(shape_result(result, output_spec(None, where="t"), storage, execution_id="1",
                                                   step="big", redactor=redactor))
    return ref


def _render(template: str, **names: Any) -> Any:
    return render_value(template, RenderContext(names), where="test")


@pytest.mark.parametrize("value", [
    {"status": "ok", "rows": ROWS[:3000], "command_0": {"rows": ROWS[:3000]}},
    [{"i": i, "t": "x" * (i % 40)} for i in range(5000)],
    {"data": {"items": ROWS[:2000], "more": {"a": [1, 2, 3]}}, "empty": [], "one": [1], "none": None},
])
def test_pieces_join_to_the_same_json_and_decode_back(value: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(layout, "SLICE_BYTES", 4096)
    parts, node = layout.encode(value)
    data = b"".join(parts)
    assert data == dumps(value) and node is not None
    assert layout.decode(node, lambda low, high: data[low:high]) == value


def test_values_orjson_cannot_write_go_the_usual_way() -> None:
    assert layout.encode({"big": 2**70, "rows": [1, 2]}) == ([], None)
    assert layout.encode({1: "a"}) == ([], None)


def test_a_template_reads_one_slice_of_a_big_result(storage: ResultStorage, _loaders: list[tuple[int, int]]) -> None:
    result = {"status": "ok", "rows": ROWS, "row_count": len(ROWS), "command_0": {"rows": ROWS}}
    ref = _stored(storage, result)
    inner = ref[REF_KEY]
    assert inner["size"] >= LAYOUT_MIN_BYTES and isinstance(inner[LAYOUT_KEY], str)
    # The stored result is the same JSON as before, byte for byte.
    assert storage._read_bytes(inner["uri"]) == dumps(result)

    assert _render("{{ big.rows[0] }}", big=ref) == ROWS[0]
    assert _render("{{ big.data.rows | length }}", big=ref) == len(ROWS)
    assert _render("{{ big.command_0.rows[-1].id }}", big=ref) == ROWS[-1]["id"]
    assert _render("{{ big.row_count }}", big=ref) == len(ROWS)
    read = sum(high - low for low, high in _loaders)
    assert read < inner["size"] / 3, f"{read} of {inner['size']} bytes read for one item, a count and a field"

    assert _render("{{ big.rows[29999:30002] | map(attribute='id') | list }}", big=ref) == [29999, 30000, 30001]
    assert _render("{{ big.nope | default('none') }}", big=ref) == "none"
    # A part rendered whole is the plain value, as before.
    assert _render("{{ big.rows }}", big=ref) == ROWS
    assert _render("{{ big.command_0 }}", big=ref) == {"rows": ROWS}
    assert json.loads(_render("{{ big.rows[:2] | tojson }}", big=ref)) == ROWS[:2]
    assert materialize({"all": ref}) == {"all": result}


def test_a_big_list_result_reads_as_a_list(storage: ResultStorage) -> None:
    items = [{"i": i, "t": "x" * 90} for i in range(50_000)]
    ref = _stored(storage, items)
    assert isinstance(ref[REF_KEY][LAYOUT_KEY], str)
    assert _render("{{ big[0] }}", big=ref) == items[0]
    assert _render("{{ big[-1].i }}", big=ref) == 49_999
    assert _render("{{ big | length }}", big=ref) == 50_000
    assert _render("{{ big.data | length }}", big=ref) == 50_000
    assert _render("{{ big.result | length }}", big=ref) == 50_000
    assert _render("{{ big.data[7].i }}", big=ref) == 7


def test_a_small_list_result_by_reference_reads_as_a_list_too(storage: ResultStorage) -> None:
    items = [{"i": i} for i in range(100)]
    ref = asyncio.run(shape_result(items, output_spec({"inline_max_bytes": 0}, where="t"), storage,
                                   execution_id="1", step="small"))
    assert LAYOUT_KEY not in ref[REF_KEY]
    assert (_render("{{ small[0] }}", small=ref), _render("{{ small | length }}", small=ref)) == ({"i": 0}, 100)
    assert _render("{{ small.data[99].i }}", small=ref) == 99


def test_a_big_result_holding_a_secret_is_read_whole_from_its_sealed_copy(storage: ResultStorage) -> None:
    secret = "s3cr3t-" + "k" * 20
    rows = [{"id": i, "token": secret if i == 5 else "x" * 60} for i in range(60_000)]
    redactor = Redactor([secret])
    ref = _stored(storage, {"rows": rows}, redactor)
    assert LAYOUT_KEY not in ref[REF_KEY] and "sealed" in ref[REF_KEY]
    assert secret.encode() not in storage._read_bytes(ref[REF_KEY]["uri"])
    assert _render("{{ big.rows[5].token }}", big=ref) == secret


def test_an_inline_render_gives_way_to_a_thread_for_a_big_read(storage: ResultStorage) -> None:
    ref = _stored(storage, {"rows": ROWS})
    render = lambda: _render("{{ big.rows }}", big=ref)  # noqa: E731
    assert render_inline(render, seconds=30) is None  # it would decode megabytes on the event loop
    assert render_inline(lambda: _render("{{ big.rows[3].id }}", big=ref), seconds=30) == 3  # one slice: inline


def test_the_event_loop_goes_on_while_a_big_result_is_decoded(storage: ResultStorage, tmp_path: Path) -> None:
    big = [{"i": i, "t": "x" * 200} for i in range(150_000)]  # 33 MB: a whole decode takes a while
    ref = _stored(storage, {"rows": big, "again": big})

    async def scenario() -> tuple[int, float]:
        done = threading.Event()
        ticks: list[float] = []

        async def short_commands() -> None:  # what a worker's heartbeat and other commands need: turns
            while not done.is_set():
                ticks.append(time.monotonic())
                await asyncio.sleep(0.005)

        ticker = asyncio.create_task(short_commands())
        await asyncio.sleep(0.02)
        began = time.monotonic()
        try:
            render = lambda: _render("{{ (big.rows + big.again) | length }}", big=ref)  # noqa: E731
            value = render_inline(render, seconds=60)
            assert value is None
            value = await render_on_thread(render, seconds=60)
        finally:
            done.set()
            await ticker
        assert value == 300_000
        return sum(1 for tick in ticks if tick > began), time.monotonic() - began

    during, _seconds = asyncio.run(scenario())
    assert during >= 2, "the event loop did not run while the result was decoded"


def _spooled(rows: list[dict[str, Any]], batch: int = 10_000) -> EncodedList:
    spooled = EncodedList()
    for start in range(0, len(rows), batch):
        spooled.extend_encoded(rows[start:start + batch])
    return spooled


def test_rows_kept_as_json_read_as_a_list() -> None:
    spooled = _spooled(ROWS[:25_000])
    assert len(spooled) == 25_000 and spooled[0] == ROWS[0] and spooled[-1] == ROWS[24_999]
    assert spooled[9_999:10_001] == ROWS[9_999:10_001] and list(spooled) == ROWS[:25_000]
    assert spooled == ROWS[:25_000] and dumps({"rows": spooled}) == dumps({"rows": ROWS[:25_000]})
    assert materialize({"rows": spooled}) == {"rows": ROWS[:25_000]}
    assert _render("{{ r.rows[10000].id }}", r={"rows": spooled}) == 10_000
    assert _render("{{ r.rows }}", r={"rows": spooled}) == ROWS[:25_000]


def test_a_result_with_rows_kept_as_json_is_stored_as_the_same_json(storage: ResultStorage) -> None:
    spooled = _spooled(ROWS)
    result = {"status": "ok", "rows": spooled, "row_count": len(ROWS), "command_0": {"rows": spooled}}
    ref = _stored(storage, result)
    plain = {"status": "ok", "rows": ROWS, "row_count": len(ROWS), "command_0": {"rows": ROWS}}
    assert storage._read_bytes(ref[REF_KEY]["uri"]) == dumps(plain)
    assert _render("{{ big.command_0.rows[59999] }}", big=ref) == ROWS[59_999]
    # Kept inline after all (a huge inline_max_bytes): the event records plain lists.
    inline = asyncio.run(shape_result(result, output_spec({"inline_max_bytes": 10**9}, where="t"), storage,
                                      execution_id="1", step="big"))
    assert type(inline["rows"]) is list and type(inline["command_0"]["rows"]) is list and inline == plain


def test_a_secret_in_rows_kept_as_json_is_redacted_and_sealed(storage: ResultStorage) -> None:
    secret = "pw-" + "z" * 24
    rows = [{"id": i, "v": secret if i == 21_000 else "plain"} for i in range(30_000)]
    redactor = Redactor([secret])
    ref = _stored(storage, {"rows": _spooled(rows), "pad": "p" * LAYOUT_MIN_BYTES}, redactor)
    assert "sealed" in ref[REF_KEY] and secret.encode() not in storage._read_bytes(ref[REF_KEY]["uri"])
    assert _render("{{ big.rows[21000].v }}", big=ref) == secret


def test_every_store_reads_a_piece_of_a_result(storage: ResultStorage, tmp_path: Path) -> None:
    store = MemoryStore()
    asyncio.run(store.open())
    memory = ResultStorage(store, settings=Settings(home=tmp_path))
    for results in (storage, memory):
        for kind in ("db", "disk", "memory"):
            ref = asyncio.run(results.put([b'{"a":', b'[1,2,3]}'], sha256="0" * 64, kind=kind, execution_id="1"))
            uri = ref[REF_KEY]["uri"]
            assert ref[REF_KEY]["size"] == 13 and results._read_bytes(uri) == b'{"a":[1,2,3]}', kind
            assert results.read_piece(uri, 5, 12) == b"[1,2,3]", kind
