"""The python tool: code styles, inputs, print capture, errors, conversions and isolation modes."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import os
import sys
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from noetl.errors import ToolError
from noetl.jsonconv import NotJsonable, to_jsonable
from noetl.tools.base import ToolCall
from noetl.tools.python import run_python, shutdown_python_pool
from noetl.tools.python_brief import runs_briefly


def make_call(args: dict[str, Any] | None = None, **fields: Any) -> ToolCall:
    fields.setdefault("context", {"workload": {"region": "eu"}})
    return ToolCall(execution_id="exec-1", step="transform", task="transform", args=args or {}, **fields)


def run(code: str, args: dict[str, Any] | None = None, *, call: ToolCall | None = None, **config: Any) -> Any:
    return asyncio.run(run_python({"code": code, **config}, call or make_call(args)))


def failure(code: str, args: dict[str, Any] | None = None, **config: Any) -> ToolError:
    with pytest.raises(ToolError) as caught:
        run(code, args, **config)
    return caught.value


@pytest.fixture(scope="module", autouse=True)
def stop_pool_afterwards() -> Iterator[None]:
    yield
    asyncio.run(shutdown_python_pool())


# ---- the three styles


def test_style_a_assigns_result() -> None:
    assert run("result = {'sum': a + b}", {"a": 3, "b": 4}) == {"sum": 7}


def test_style_b_main_gets_inputs_by_parameter_name() -> None:
    code = "def main(b, a):\n    return {'diff': a - b}"
    assert run(code, {"a": 10, "b": 4}) == {"diff": 6}


def test_style_b_async_main_is_awaited() -> None:
    code = "import asyncio\nasync def main(x):\n    await asyncio.sleep(0)\n    return {'x': x}"
    assert run(code, {"x": 5}) == {"x": 5}


def test_style_b_kwargs_receive_the_other_inputs() -> None:
    code = "def main(a, **rest):\n    return {'a': a, 'rest': rest}"
    assert run(code, {"a": 1, "b": 2, "c": 3}) == {"a": 1, "rest": {"b": 2, "c": 3}}


def test_style_b_parameters_with_defaults_may_be_missing() -> None:
    assert run("def main(a, b=10):\n    return a + b", {"a": 1}) == 11


def test_style_b_missing_required_parameter_is_a_clear_error() -> None:
    error = failure("def main(a, city):\n    return a", {"a": 1})
    assert error.kind == "input"
    assert "city" in error.message and "inputs given: a" in error.message


def test_style_b_main_may_ask_for_input_data() -> None:
    assert run("def main(input_data):\n    return sorted(input_data)", {"b": 1, "a": 2}) == ["a", "b"]


def test_style_b_is_not_called_twice_when_the_code_assigns_result() -> None:
    code = "calls = []\ndef main(x):\n    calls.append(x)\n    return len(calls)\nresult = main(x)"
    assert run(code, {"x": 1}) == 1


def test_style_c_top_level_return() -> None:
    code = "x = int(x) + 1\nif x > 2:\n    return {'big': x}\nreturn {'small': x}"
    assert run(code, {"x": "2"}) == {"big": 3}


def test_style_c_keeps_module_semantics_for_functions_and_imports() -> None:
    code = "import math\ndef area(r):\n    return math.pi * r * r\nreturn round(area(radius), 2)"
    assert run(code, {"radius": 1}) == 3.14


def test_style_c_falls_back_to_result_when_nothing_is_returned() -> None:
    assert run("if flag:\n    return 'early'\nresult = 'late'", {"flag": False}) == "late"


def test_top_level_await() -> None:
    assert run("import asyncio\nawait asyncio.sleep(0)\nresult = 'awaited'") == "awaited"


def test_no_result_is_none() -> None:
    assert run("x = 1") is None


# ---- inputs and globals


def test_input_data_holds_every_input() -> None:
    assert run("result = input_data", {"a": 1, "b": [2]}) == {"a": 1, "b": [2]}


def test_an_input_named_input_data_wins() -> None:
    assert run("result = input_data", {"input_data": "mine"}) == "mine"


def test_execution_id_and_context_are_defined() -> None:
    assert run("result = [execution_id, context['workload']['region']]") == ["exec-1", "eu"]


def test_context_is_only_built_when_the_code_mentions_it() -> None:
    class ExplodingContext(dict[str, Any]):
        def __iter__(self) -> Iterator[str]:
            raise AssertionError("context copied although unused")

        def keys(self) -> Any:
            raise AssertionError("context copied although unused")

    assert run("result = 1", call=make_call(context=ExplodingContext())) == 1


def test_libs_import_modules_under_aliases() -> None:
    assert run("result = [j.dumps([1]), pth.basename('/a/b')]", libs={"j": "json", "pth": "os.path"}) == [
        "[1]",
        "b",
    ]


def test_libs_with_an_unknown_module_is_a_config_error() -> None:
    assert failure("result = 1", libs={"x": "no_such_module_here"}).kind == "config"


def test_code_b64() -> None:
    encoded = base64.b64encode(b"result = 'decoded'").decode()
    assert asyncio.run(run_python({"code_b64": encoded}, make_call())) == "decoded"


def test_script_file_is_found_beside_the_playbook(tmp_path: Path) -> None:
    (tmp_path / "transform.py").write_text("result = value * 2\n")
    config = {"script": {"uri": "./transform.py", "source": {"type": "file"}}}
    assert asyncio.run(run_python(config, make_call({"value": 21}, playbook_dir=tmp_path))) == 42


def test_script_from_other_sources_needs_an_extra() -> None:
    config = {"script": {"uri": "gs://bucket/t.py", "source": {"type": "gcs"}}}
    with pytest.raises(ToolError) as caught:
        asyncio.run(run_python(config, make_call()))
    assert caught.value.kind == "config" and "gcs" in caught.value.message


def test_missing_code_is_a_config_error() -> None:
    with pytest.raises(ToolError) as caught:
        asyncio.run(run_python({}, make_call()))
    assert caught.value.kind == "config"


def test_unknown_isolation_is_a_config_error() -> None:
    assert failure("result = 1", isolation="vm").kind == "config"


# ---- print capture


def test_print_is_captured_into_the_call_logs(capsys: pytest.CaptureFixture[str]) -> None:
    call = make_call({"name": "ada"})
    run("print('hello', name)\nprint('a', 'b', sep='-', end='')\nprint('!')\nresult = 1", call=call)
    assert call.logs == ["hello ada", "a-b!"]
    assert capsys.readouterr().out == ""


def test_concurrent_calls_keep_separate_output() -> None:
    code = "import time\nfor i in range(5):\n    print(name, i)\n    time.sleep(0.01)"

    async def both() -> tuple[ToolCall, ToolCall]:
        first, second = make_call({"name": "first"}), make_call({"name": "second"})
        await asyncio.gather(run_python({"code": code}, first), run_python({"code": code}, second))
        return first, second

    first, second = asyncio.run(both())
    assert first.logs == [f"first {i}" for i in range(5)]
    assert second.logs == [f"second {i}" for i in range(5)]


def test_output_is_kept_when_the_code_fails() -> None:
    call = make_call()
    with pytest.raises(ToolError):
        run("print('before')\nraise RuntimeError('x')", call=call)
    assert call.logs == ["before"]


# ---- errors point at the user's line


def test_exception_in_style_a_reports_type_message_and_line() -> None:
    error = failure("x = 1\ny = 0\nz = x / y\nresult = z")
    assert error.kind == "ZeroDivisionError"
    assert error.message == "ZeroDivisionError: division by zero"
    assert error.details["line"] == 3
    assert 'File "<step transform>", line 3' in error.details["traceback"]
    assert "z = x / y" in error.details["traceback"]


def test_exception_in_style_b_reports_the_line_inside_main() -> None:
    error = failure("def main(items):\n    first = items[0]\n    return items[5]", {"items": [1]})
    assert error.kind == "IndexError"
    assert error.details["line"] == 3


def test_exception_in_style_c_reports_the_line_as_written() -> None:
    error = failure("from __future__ import annotations\nx = 1\nif x:\n    return {}['missing']\nreturn 2")
    assert error.kind == "KeyError"
    assert error.details["line"] == 4
    assert "in <module>" in error.details["traceback"]


def test_exception_raised_inside_a_library_points_at_the_calling_line() -> None:
    error = failure("import json\n\njson.loads('not json')")
    assert error.kind == "JSONDecodeError"
    assert error.details["line"] == 3
    assert "site-packages" not in error.details["traceback"] and "json/" not in error.details["traceback"]


def test_syntax_error_reports_its_line() -> None:
    error = failure("x = 1\ny = (\n")
    assert error.kind == "SyntaxError"
    assert error.details["line"] == 2


def test_sys_exit_fails_the_step_not_the_runtime() -> None:
    error = failure("import sys\nsys.exit(3)")
    assert error.kind == "SystemExit"
    assert error.message == "SystemExit: 3"
    assert error.details["line"] == 2


def test_keyboard_interrupt_in_code_fails_the_step() -> None:
    assert failure("raise KeyboardInterrupt").kind == "KeyboardInterrupt"


# ---- result conversion


def test_result_values_are_converted_to_json() -> None:
    code = (
        "from decimal import Decimal\nimport datetime as dt, uuid\n"
        "result = {'int': Decimal('3.00'), 'float': Decimal('2.5'), 'naive': dt.datetime(2024, 5, 1, 12, 0),"
        " 'aware': dt.datetime(2024, 5, 1, 14, 0, tzinfo=dt.timezone(dt.timedelta(hours=2))),"
        " 'day': dt.date(2024, 5, 1), 'id': uuid.UUID(int=1), 'raw': b'hi', 'pair': (1, 2), 'set': {2, 1}}"
    )
    assert run(code) == {
        "int": 3,
        "float": 2.5,
        "naive": "2024-05-01T12:00:00+00:00",
        "aware": "2024-05-01T12:00:00+00:00",
        "day": "2024-05-01",
        "id": "00000000-0000-0000-0000-000000000001",
        "raw": "aGk=",
        "pair": [1, 2],
        "set": [1, 2],
    }


def test_unserialisable_result_is_a_result_error() -> None:
    error = failure("result = {'rows': [1, object()]}")
    assert error.kind == "result"
    assert "$.rows[1]" in error.message


@pytest.mark.parametrize("value", ["float('nan')", "float('inf')", "-float('inf')"])
def test_a_result_holding_nan_or_infinity_is_a_result_error(value: str) -> None:
    """No store keeps them: on the local store the run stopped with a store error and left the
    execution running, on PostgreSQL the step failed only when its report was stored."""
    error = failure(f"result = {{'stats': {{'mean': {value}}}}}")
    assert error.kind == "result"
    assert "at $.stats.mean" in error.message


def test_to_jsonable_directly() -> None:
    value = {
        "d": Decimal("1.10"),
        "t": dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
        "u": uuid.UUID(int=2),
        "b": b"\x00",
    }
    assert to_jsonable(value) == {
        "d": 1.1,
        "t": "2024-01-01T00:00:00+00:00",
        "u": "00000000-0000-0000-0000-000000000002",
        "b": "AA==",
    }
    with pytest.raises(NotJsonable):
        to_jsonable([object()])


# ---- isolation modes


def test_inline_mode_runs_in_the_event_loop() -> None:
    assert (
        run("import threading\nresult = threading.current_thread().name", isolation="inline") == "MainThread"
    )


def test_default_mode_runs_in_a_worker_thread() -> None:
    assert run("import threading\nresult = threading.current_thread().name").startswith("noetl-python")


def test_a_lone_slow_step_in_a_thread_leaves_the_event_loop_free() -> None:
    # A lone step's result is first waited for briefly on the loop's thread; slower code must
    # still hand the loop back (timers, other tools' calls, the log batcher keep running).
    async def ticks_during_the_step() -> tuple[Any, int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticking = asyncio.create_task(ticker())
        try:
            value = await run_python({"code": "import time\ntime.sleep(0.3)\nresult = 'slept'"}, make_call())
        finally:
            ticking.cancel()
        return value, ticks

    value, ticks = asyncio.run(ticks_during_the_step())
    assert value == "slept"
    assert ticks >= 10  # about 30 when the loop is free; none if the step held it


# Spins until the caller sets flag["stop"]; gives up after seconds of spinning if nobody can.
SPIN_UNTIL_STOPPED = """
n = 0
while not flag["stop"] and n < 50_000_000:
    n += 1
result = "stopped" if flag["stop"] else "gave up"
"""


# `sorted(..., key=exec)` calls no built-in outside the brief list by name, yet runs a loop.
@pytest.mark.parametrize("code", [SPIN_UNTIL_STOPPED, "sorted([spin], key=exec)"], ids=["loop", "exec as a key"])
def test_default_mode_code_that_loops_leaves_the_event_loop_free(code: str) -> None:
    # Only code that cannot loop runs on the event loop: a loop keeps its thread, so the loop's
    # timers (and a cancellation) still run while it spins.
    flag = {"stop": False}

    async def spin_until_the_loop_ticks() -> Any:
        step = asyncio.create_task(run_python({"code": code}, make_call({"flag": flag, "spin": SPIN_UNTIL_STOPPED})))
        ticks, deadline = 0, time.monotonic() + 30
        while ticks < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
            ticks += 1
        flag["stop"] = True
        return await step, ticks

    assert asyncio.run(spin_until_the_loop_ticks()) == ("stopped", 3)


def test_brief_default_mode_code_keeps_inputs_output_and_errors() -> None:
    call = make_call({"a": 2, "b": 3})
    assert run("print('sum', a + b)\nresult = {'sum': a + b, 'n': len([a, b])}", call=call) == {"sum": 5, "n": 2}
    assert call.logs == ["sum 5"]
    error = failure("x = 1\nresult = x / 0")
    assert error.kind == "ZeroDivisionError" and "division by zero" in str(error)
    assert failure("result = len(3)", {"len": 7}).kind == "TypeError"  # an input named like a built-in wins


@pytest.mark.parametrize(
    ("code", "brief"),
    [
        ("result = 1", True),
        ("x = a * 2\nif x > 3:\n    result = {'big': x}\nelse:\n    result = f'{x:>4}'", True),
        ("print(len(items), sorted(items)[0])\nreturn items[1:]", True),
        ("while True:\n    pass", False),
        ("result = [i for i in items]", False),
        ("import time\nresult = 1", False),
        ("result = items.copy()", False),
        ("result = items.count", False),
        ("result = context['workload']", False),
        ("def f():\n    return 1\nresult = f()", False),
        ("f = lambda: 1\nresult = 2", False),
        ("len = max\nresult = len(items)", False),
        ("result = open('/etc/passwd')", False),
        ("result = (", False),
        ("result = sorted(items, key=exec)", False),
        ("result = max(items, key=__import__)", False),
        ("result = __builtins__", False),
        ("result = 10**10**8", False),
        ("result = 1 << items", False),
        ("result = 'x' * items", False),
        ("result = items * 10_000_000_000", False),
        ("x = 'x'\nx *= items", False),
        ("result = '%*d' % (items, 0)", False),
        ("result = f'{0:>{items}}'", False),
        ("result = f'{0:>1000000000}'", False),
        ("result = round(12345, -10**8)", False),
        ("result = round(12345, items)", False),
        ("result = sum(items, [])", False),
        ("result = {'half': round(items / 2, 2), 'twice': items * 2, 'total': sum(items, 0)}", True),
        ("result = f'{items:.2f} {items!r:>10}'", True),
    ],
)
def test_only_code_that_cannot_loop_wait_or_run_other_code_is_brief(code: str, brief: bool) -> None:
    assert runs_briefly(code, ["items"]) is brief
    assert not runs_briefly("result = len(items)", ["items", "len"])
    assert runs_briefly("result = {'id': id, 'type': type}", ["id", "type"])  # inputs, plain data
    assert not runs_briefly("result = sorted(items, key=exec)\nexec = 1", ["items"])


def test_errors_of_slow_and_fast_thread_steps_reach_the_caller() -> None:
    assert "fast" in str(failure("raise ValueError('fast')"))
    assert "slow" in str(failure("import time\ntime.sleep(0.05)\nraise ValueError('slow')"))


def test_process_mode_runs_in_a_worker_process_and_captures_output() -> None:
    call = make_call({"x": 2})
    code = "import os, sys\nprint('via print', x)\nsys.stdout.write('direct\\n')\nresult = os.getpid()"
    pid = run(code, call=call, isolation="process")
    assert pid != os.getpid()
    assert call.logs == ["via print 2", "direct"]


def test_process_pool_reuses_its_workers() -> None:
    pids = {run("import os\nresult = os.getpid()", isolation="process") for _ in range(6)}
    assert len(pids) <= 2  # the default pool size


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_DUMPABLE is Linux's")
def test_a_worker_process_is_out_of_reach_of_the_other_tools_processes() -> None:
    # Dumpable, its /proc/<pid>/mem (the inputs and secrets of every step it ran) was readable by
    # the code of every other worker process and shell step of the same user.
    code = "import ctypes\nresult = ctypes.CDLL(None).prctl(3, 0, 0, 0, 0)"  # PR_GET_DUMPABLE
    assert run(code, isolation="process") == 0
    assert run("result = 'still works'", isolation="process") == "still works"


def test_process_mode_reports_user_errors_with_lines() -> None:
    error = failure("x = 1\nraise ValueError('disk full on node 7')", isolation="process")
    assert error.kind == "ValueError"
    assert error.message == "ValueError: disk full on node 7"
    assert error.details["line"] == 2


def test_os_exit_in_process_mode_is_a_crash_of_the_step_only() -> None:
    error = failure("import os\nos._exit(4)", isolation="process")
    assert error.kind == "crash"
    assert "exited with code 4" in error.message
    assert run("result = 'still working'", isolation="process") == "still working"


def test_sys_exit_in_process_mode_keeps_the_worker() -> None:
    pid_before = run("import os\nresult = os.getpid()", isolation="process")
    assert failure("import sys\nsys.exit(1)", isolation="process").kind == "SystemExit"
    pids_after = {run("import os\nresult = os.getpid()", isolation="process") for _ in range(4)}
    assert pid_before in pids_after


def test_timeout_stops_a_cpu_bound_loop() -> None:
    started = time.monotonic()
    with pytest.raises(ToolError) as caught:
        run("while True:\n    pass", call=make_call(timeout=0.5))
    assert time.monotonic() - started < 5
    assert caught.value.kind == "timeout"
    assert caught.value.retryable is True
    assert caught.value.message == "timed out after 0.5 s"
    # the killed worker was replaced
    assert run("result = 'after timeout'", call=make_call(timeout=5)) == "after timeout"


def test_cancelling_a_process_step_kills_its_worker() -> None:
    async def cancel_soon() -> None:
        task = asyncio.create_task(
            run_python({"code": "while True:\n    pass", "isolation": "process"}, make_call())
        )
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    started = time.monotonic()
    asyncio.run(cancel_soon())
    assert run("result = 1", isolation="process") == 1
    assert time.monotonic() - started < 10


def test_shutdown_stops_the_workers_and_a_later_call_starts_new_ones() -> None:
    pid = run("import os\nresult = os.getpid()", isolation="process")
    asyncio.run(shutdown_python_pool())
    deadline = time.monotonic() + 5
    while _process_exists(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _process_exists(pid)
    assert run("result = 2", isolation="process") == 2


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
