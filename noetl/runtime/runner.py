"""Run one command: the step's tasks in order, with task policies (retry, jump, break, fail).

Shared by the local runtime and the distributed workers, so a playbook behaves the same on both.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from functools import lru_cache, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from noetl.backoff import backoff_delay
from noetl.dsl.aliases import alias_applies
from noetl.dsl.behaviour import plain_dump
from noetl.dsl.kinds import TOOL_KINDS, UNRENDERED_FIELDS
from noetl.dsl.render import RenderContext, evaluate_when, render_data, tracing
from noetl.engine.commands import Command
from noetl.engine.decide import deep_merge
from noetl.engine.envelope import envelope, result_kind, workbook_kinds
from noetl.errors import ErrorInfo, NoetlError, TemplateError, ToolError
from noetl.results.outcome import recorded_result, store_big_results, tool_inputs_off_loop
from noetl.results.refs import results_held
from noetl.runtime.rendering import render_inline, render_on_thread
from noetl.tools.base import ToolCall, ToolServices, get_tool
from noetl.tools.environment import safe_environment
from noetl.waiting import within

if TYPE_CHECKING:
    from noetl.dsl.model import Playbook

MAX_PIPELINE_HOPS = 10_000  # jumps + retries inside one command, a guard against endless loops


@dataclass(slots=True, eq=False, repr=False)  # filled in as it runs: compared and shown by identity
class Outcome:
    """What one command's run produced: the step's result or error, its logs and context changes."""

    ok: bool
    result: Any = None
    error: dict[str, Any] | None = None
    ctx_set: dict[str, Any] = field(default_factory=dict)
    logs: list[str] = field(default_factory=list)
    attempts: int = 1
    duration: float = 0.0
    secrets: set[str] = field(default_factory=set)
    tasks: dict[str, Any] = field(default_factory=dict)  # named task results, but the step result's own
    result_task: str | None = None  # the named task whose result is the step result
    names: dict[str, Any] = field(default_factory=dict)  # bare keys of task-level `set`
    warnings: list[dict[str, Any]] = field(default_factory=list)  # undefined template names used
    logs_streamed: bool = False  # the call's lines are in the store's logs (noetl.runtime.logstream)


_NO_RESULT = object()
_NO_ENVELOPE: dict[str, Any] = {}  # read by no one: the task has no `set` and no policy (``spec``)


@dataclass(slots=True, eq=False, repr=False)  # state that changes as it runs: compared and shown by identity
class _Pipeline:
    """The tasks of one command as they run one after another: their results so far and what they set."""

    command: Command
    iter_vars: dict[str, Any]
    results: dict[str, Any] = field(default_factory=dict)
    named: list[str] = field(default_factory=list)  # tasks the playbook named, in the order they ran
    names: dict[str, Any] = field(default_factory=dict)  # bare keys of task-level `set`
    prev: Any = None
    ctx_set: dict[str, Any] = field(default_factory=dict)
    logs: list[str] = field(default_factory=list)
    secrets: set[str] = field(default_factory=set)
    output: Any = None  # the call's CallLog, when the runtime streams logs
    attempts: int = 0
    overrides: dict[int, dict[str, Any]] = field(default_factory=dict)  # task index -> config changes (`call`)
    # A workbook entry's tasks: their own `input` are defaults that the calling step's input beats.
    input_defaults: bool = False
    result: Any = _NO_RESULT


class Runner:
    """Runs commands for one playbook. ``services`` gives tools access to the runtime."""

    def __init__(self, playbook: Playbook, *, playbook_dir: Path | None, services: ToolServices | None,
                 playbook_text: str = "") -> None:
        self.playbook = playbook
        self.playbook_dir = playbook_dir
        self.services = services
        # A python error names a line of the step's code; the user edits the playbook file.
        self.playbook_text = playbook_text
        self.workbook_kinds = workbook_kinds(playbook.workbook)
        self.outputs = {step.step: step.output for step in playbook.workflow}
        # What every tool may see of this process's environment, read once: reading os.environ
        # encodes and decodes each variable, a cost every python and shell step paid.
        self.environment = safe_environment()

    async def run(self, command: Command) -> Outcome:
        started = time.perf_counter()
        if "__input_error__" in command.args:
            return Outcome(ok=False, error=self._located(command.step, _input_error(command.args["__input_error__"])))
        pipe = _Pipeline(command=command, iter_vars=dict(command.context.get("iter") or {}))
        pipe.output = self._call_log(command, pipe.secrets)
        try:
            with tracing(command.step, strict=command.strict) as trace:
                try:
                    ok, result, error = await self._run_tasks(pipe, command.tasks)
                except NoetlError as exc:
                    ok, result, error = False, None, ErrorInfo.from_exception(exc).to_dict()
        finally:
            if pipe.output is not None:
                await pipe.output.close()  # the call's lines are stored before its event
        if error:
            error = self._located(command.step, error)
        outcome = Outcome(ok=ok, result=result, error=error, ctx_set=pipe.ctx_set, logs=pipe.logs,
                          attempts=max(pipe.attempts, 1), duration=time.perf_counter() - started,
                          secrets=pipe.secrets, names=pipe.names, warnings=[*command.warnings, *trace.warnings],
                          logs_streamed=pipe.output is not None and pipe.output.lines > 0 and not pipe.output.lost)
        if ok:
            _attach_task_results(outcome, pipe)
            try:
                await store_big_results(self.services, outcome, self.outputs.get(command.step), command)
            except NoetlError as exc:
                outcome.ok, outcome.result, outcome.tasks = False, None, {}
                outcome.error = ErrorInfo.from_exception(exc).to_dict()
        return outcome

    def _located(self, step: str, error: dict[str, Any]) -> dict[str, Any]:
        """The error with the playbook file's line it points at (a code line or a template's field)."""
        from noetl.dsl.codelines import with_playbook_line

        return with_playbook_line(self.playbook_text, step, error)

    def _call_log(self, command: Command, secrets: set[str]) -> Any:
        """The call's streamed log, when the runtime has a log batcher (noetl.runtime.logstream)."""
        batcher = getattr(self.services, "log_batcher", None)
        if batcher is None:
            return None
        return batcher.open_call(command.execution_id, command.step, command.loop_index,
                                 redactor=getattr(self.services, "redactor", None), secrets=secrets)

    async def _run_tasks(self, pipe: _Pipeline, tasks: list[dict[str, Any]]) -> tuple[bool, Any, Any]:
        names = [t.get("name") or (pipe.command.step if len(tasks) == 1 else f"task_{i}") for i, t in enumerate(tasks)]
        index, hops = 0, 0
        attempts_of: dict[int, int] = {}  # every run of a task (bounds `call` re-runs)
        tries = 0  # runs of the current task since it was last entered other than by a retry
        retrying = False
        result: Any = None
        while index < len(tasks):
            hops += 1
            if hops > MAX_PIPELINE_HOPS:
                raise ToolError(f"step {pipe.command.step!r}: more than {MAX_PIPELINE_HOPS} retries/jumps", kind="policy")
            task = tasks[index]
            attempts_of[index] = attempts_of.get(index, 0) + 1
            # A jump back to a task (pagination) starts a new series of attempts.
            tries = tries + 1 if retrying else 1
            retrying = False
            pipe.attempts += 1
            ok, result, error = await self._run_task(pipe, _with_overrides(task, pipe.overrides.get(index)),
                                                     names[index])
            # Only a task's `set` and its policy see the envelope: a task with neither builds none.
            envelope = self._envelope(ok, result, error, task) if task.get("set") or task.get("spec") else _NO_ENVELOPE
            # The task's own `set` sees every run's envelope, a failed one too (output.status ==
            # 'error'), before its policy rules, so a rule that continues can use what it wrote.
            if task.get("set"):
                try:
                    self._apply_task_set(pipe, task["set"], envelope, names[index])
                except TemplateError as exc:
                    if ok:
                        raise
                    # A set written for the successful run (output.data.rows[0]) still leaves the
                    # policy its say (a retry); the task's own error stays what is seen.
                    error = _with_note(error, exc)
            try:
                action = self._policy_action(pipe, task, envelope, names[index])
            except TemplateError as exc:
                if ok:
                    raise
                return False, None, _with_note(error, exc)  # the task's own error stays what is seen
            do = action.get("do", "continue" if ok else "fail")
            self._apply_policy_set(pipe, action.get("set") or {}, envelope, names[index])
            self._apply_policy_result(pipe, action, envelope, names[index])
            if ok and task.get("output") is not None:
                result = await recorded_result(self.services, result, task["output"],
                                               execution_id=pipe.command.execution_id, step=pipe.command.step,
                                               secrets=pipe.secrets, where=f"task {names[index]!r} output")
            if ok:
                pipe.results[names[index]] = result
                pipe.prev = result
                if task.get("name") and names[index] not in pipe.named:
                    pipe.named.append(names[index])
            if do == "retry":
                if tries < int(action.get("attempts", 3)):
                    await asyncio.sleep(backoff_delay(tries, delay=float(action.get("delay") or 0),
                                                      backoff=str(action.get("backoff") or "none"),
                                                      max_delay=action.get("max_delay")))
                    retrying = True
                    continue
                if not ok:
                    return False, None, error
                do = "continue"
            if do == "fail":
                return False, None, error or ErrorInfo("policy", f"task {names[index]!r}: policy said fail",
                                                       False).to_dict()
            if do == "break":
                return True, self._final(pipe, result), None
            if do == "jump":
                index = self._jump(pipe, action, names, attempts_of, envelope)
                continue
            if not ok and do == "continue" and index == len(tasks) - 1:
                # Past the last task's error the pipeline ends as NoETL's task sequences always
                # did: successfully, with the last successful task's result (null if none).
                return True, self._final(pipe, pipe.prev), None
            index += 1
        return True, self._final(pipe, result), None

    @staticmethod
    def _final(pipe: _Pipeline, result: Any) -> Any:
        return result if pipe.result is _NO_RESULT else pipe.result

    def _jump(self, pipe: _Pipeline, action: dict[str, Any], names: list[str], attempts_of: dict[int, int],
              envelope: dict[str, Any]) -> int:
        target = action.get("to")
        if target not in names:
            raise ToolError(f"policy jump to unknown task {target!r}", kind="policy")
        index = names.index(target)
        limit = action.get("attempts") if action.get("call") is not None else None
        if limit is not None and attempts_of.get(index, 0) >= int(limit):
            raise ToolError(f"task {target!r} re-run more than {limit} times", kind="policy")
        if action.get("call") is not None:
            context = self._policy_context(pipe, envelope)
            changes = render_data(action["call"], context, where=f"step {pipe.command.step!r} call")
            pipe.overrides[index] = deep_merge(pipe.overrides.get(index) or {}, changes)
        return index

    async def _run_task(self, pipe: _Pipeline, task: dict[str, Any], name: str) -> tuple[bool, Any, Any]:
        context = self._task_context(pipe)
        kind = task.get("kind", "noop")
        if kind == "sink" and "result" not in pipe.names and "result" not in pipe.results \
                and alias_applies("result", self.outputs, pipe.command.context.get("workload")):
            context = context.child({"result": pipe.prev})  # a v1 `save:` reads the step's result so
        try:
            skip, unrendered = _config_fields(kind)
            config = {k: v for k, v in task.items() if k not in skip}
            if pipe.input_defaults and isinstance(config.get("input"), dict):
                config["input"] = _defaults_not_given(config["input"], pipe.command)
            timeout = ((task.get("spec") or {}).get("timeout")) or pipe.command.timeout
            render = partial(self._render_config, pipe, config, context, unrendered)
            with results_held():  # fields reading one big result decode it once, not once each
                rendered = render_inline(render, seconds=timeout)
                config = rendered if rendered is not None else await render_on_thread(render, seconds=timeout)
            config = await tool_inputs_off_loop(kind, config)
            result = await self._dispatch(pipe, kind, config, name, context, timeout)
            return True, result, None
        except NoetlError as exc:
            return False, None, ErrorInfo.from_exception(exc).to_dict()

    @staticmethod
    def _render_config(pipe: _Pipeline, config: dict[str, Any], context: RenderContext,
                       unrendered: frozenset[str]) -> dict[str, Any]:
        return {k: (v if k in unrendered else render_data(v, context, where=f"step {pipe.command.step!r} {k}"))
                for k, v in config.items()}

    async def _dispatch(self, pipe: _Pipeline, kind: str, config: dict[str, Any], name: str,
                        context: RenderContext, timeout: float | None) -> Any:
        command = pipe.command
        if kind == "workbook":
            return await self._run_workbook(pipe, config, name, context)
        own_input = config.pop("input", None) or {}
        args = ({**own_input, **command.args, **command.arc_input} if pipe.input_defaults
                else {**command.args, **own_input, **command.arc_input})
        args = await tool_inputs_off_loop(kind, args)
        call = ToolCall(execution_id=command.execution_id, step=command.step, task=name, context=context,
                        args=args, playbook_dir=self.playbook_dir, timeout=timeout, services=self.services,
                        logs=pipe.logs, secrets=pipe.secrets, output=pipe.output, environment=self.environment)
        if kind == "playbook":
            if self.services is None:
                raise ToolError("playbook calls need a runtime", kind="config")
            return await self.services.run_child_playbook(
                path=str(config.get("path")), payload=args, version=config.get("version"),
                return_step=config.get("return_step"), call=call)
        if kind == "sink":
            from noetl.tools.sink import write_sink

            data = await tool_inputs_off_loop(kind, config.pop("data", pipe.prev))
            return await _with_timeout(write_sink(config, data, call), timeout)
        tool = get_tool(kind)
        if not timeout or kind == "python":  # python enforces its own timeout (in a worker process)
            return await tool(config, call)
        return await _with_timeout(tool(config, call), timeout)

    async def _run_workbook(self, pipe: _Pipeline, config: dict[str, Any], name: str, context: RenderContext) -> Any:
        entry = self.playbook.workbook_entry(str(config.get("name")))
        if entry is None:
            raise ToolError(f"no workbook entry named {config.get('name')!r}", kind="config")
        inner_args = {**pipe.command.args, **(config.get("input") or {}), **pipe.command.arc_input}
        inner_command = Command(
            command_id=pipe.command.command_id, execution_id=pipe.command.execution_id, step=pipe.command.step,
            tasks=[plain_dump(t) for t in entry.tool], args=inner_args,
            context=context.child({"input": inner_args, **inner_args}), timeout=pipe.command.timeout,
        )
        inner = _Pipeline(command=inner_command, iter_vars=pipe.iter_vars, logs=pipe.logs, secrets=pipe.secrets,
                          output=pipe.output, ctx_set=pipe.ctx_set, input_defaults=True)
        _check_contract(entry.name, entry.assert_, "expects", inner_args)
        ok, result, error = await self._run_tasks(inner, inner_command.tasks)
        if ok:
            _check_contract(entry.name, entry.assert_, "returns", result)
        if not ok:
            raise ErrorInfo.from_dict(error or {}).to_exception("workbook task failed")
        return result

    def _envelope(self, ok: bool, result: Any, error: dict[str, Any] | None, task: dict[str, Any]) -> dict[str, Any]:
        return envelope(ok, result, error, kind=result_kind([task], self.workbook_kinds))

    def _task_context(self, pipe: _Pipeline) -> RenderContext:
        local: dict[str, Any] = {**_inputs_by_name(pipe.command), **pipe.names, **pipe.results}
        local["_prev"] = pipe.prev
        local["iter"] = pipe.iter_vars  # always defined, so `iter.x | default(...)` works outside loops
        if alias_applies("args", self.outputs, pipe.command.context.get("workload")):
            local["args"] = pipe.command.args  # `{{ args.x }}`: the older spelling of the step's input
        if pipe.ctx_set:
            ctx = dict(pipe.command.context.get("ctx") or {})
            ctx.update(pipe.ctx_set)
            local.update({"ctx": ctx, "vars": ctx})
        return pipe.command.context.child(local) if isinstance(pipe.command.context, RenderContext) \
            else RenderContext(local, pipe.command.context)

    def _policy_context(self, pipe: _Pipeline, envelope: dict[str, Any]) -> RenderContext:
        event = {"name": "call.done" if envelope["status"] == "ok" else "call.error", "step": pipe.command.step,
                 "payload": envelope["data"]}
        return self._task_context(pipe).child({"output": envelope, "result": envelope["data"], "event": event,
                                               "response": envelope["data"], "error": envelope["error"] or {}})

    def _apply_policy_result(self, pipe: _Pipeline, action: dict[str, Any], envelope: dict[str, Any],
                             name: str) -> None:
        if action.get("result") is None:
            return
        pipe.result = render_data(action["result"], self._policy_context(pipe, envelope),
                                  where=f"step {pipe.command.step!r} task {name!r} result")

    def _policy_action(self, pipe: _Pipeline, task: dict[str, Any], envelope: dict[str, Any], name: str) -> dict[str, Any]:
        rules = (((task.get("spec") or {}).get("policy") or {}).get("rules")) or []
        if not rules:
            return {}
        context = self._policy_context(pipe, envelope)
        for rule in rules:
            when = rule.get("when")
            if when is None or evaluate_when(when, context, where=f"step {pipe.command.step!r} task {name!r} policy when"):
                return dict(rule.get("then") or {})
        return {}

    def _apply_policy_set(self, pipe: _Pipeline, updates: dict[str, Any], envelope: dict[str, Any], name: str) -> None:
        if not updates:
            return
        context = self._policy_context(pipe, envelope)
        for key, value in updates.items():
            rendered = render_data(value, context, where=f"step {pipe.command.step!r} task {name!r} set {key}")
            if key.startswith("iter."):
                pipe.iter_vars[key[5:]] = rendered
            else:
                pipe.ctx_set[key.split(".", 1)[1] if key.startswith(("ctx.", "vars.")) else key] = rendered

    def _apply_task_set(self, pipe: _Pipeline, updates: dict[str, Any], envelope: dict[str, Any], name: str) -> None:
        """A task's own `set`, after each run of the task, a failed one too: `ctx.*`/`vars.*` keys
        write execution variables, `iter.*` the pipeline's iteration variables, bare keys names for
        the rest of the step. Each value sees the ones set before it."""
        for key, value in updates.items():
            context = self._policy_context(pipe, envelope)
            rendered = render_data(value, context, where=f"step {pipe.command.step!r} task {name!r} set.{key}")
            if key.startswith("iter."):
                pipe.iter_vars[key[5:]] = rendered
            elif key.startswith(("ctx.", "vars.")):
                pipe.ctx_set[key.split(".", 1)[1]] = rendered
            else:
                pipe.names[key] = rendered


@lru_cache(maxsize=64)  # kinds a playbook names; bounded, a server sees arbitrary ones
def _config_fields(kind: str) -> tuple[frozenset[str], frozenset[str]]:
    """For a tool kind: the task keys that are not its configuration, and the configuration fields
    left unrendered. `name` is the task's name in a pipeline, unless the tool takes it (a workbook
    entry, ...)."""
    tool_kind = TOOL_KINDS.get(kind)
    takes_name = tool_kind is not None and tool_kind.takes_name
    skip = frozenset(("kind", "spec", "set", "output") if takes_name else ("kind", "name", "spec", "set", "output"))
    return skip, UNRENDERED_FIELDS | (tool_kind.self_rendered if tool_kind is not None else frozenset())


def _inputs_by_name(command: Command) -> dict[str, Any]:
    """The step's inputs that no other name of the render context holds, by their bare names: v1
    SQL and http configs read their step's `with:` so (`VALUES ({{ alert_count }})`), as python
    code reads its inputs; a workload key, step or variable of the same name keeps its meaning."""
    given = {**command.args, **command.arc_input}
    return {k: v for k, v in given.items() if k not in command.context}


def _defaults_not_given(defaults: dict[str, Any], command: Command) -> dict[str, Any]:
    """A workbook entry's input defaults the caller does not give: only those are rendered, so a
    default that reads a name the caller's run lacks (`forecast: "{{ get_forecast }}"`) neither
    warns nor, in strict mode, fails once the calling step passes `forecast` itself."""
    return {k: v for k, v in defaults.items() if k not in command.args and k not in command.arc_input}


def _check_contract(name: str, contract: dict[str, Any] | None, part: str, value: Any) -> None:
    """A workbook entry's `assert: {expects: [...], returns: [...]}`: names its inputs/result must have."""
    wanted = (contract or {}).get(part)
    if not wanted:
        return
    names = [wanted] if isinstance(wanted, str) else list(wanted if isinstance(wanted, list) else dict(wanted))
    have = value if isinstance(value, dict) else {}
    missing = [n for n in names if n not in have]
    if missing:
        what = "inputs" if part == "expects" else "result keys"
        raise ToolError(f"workbook {name!r} {part} {what} {missing} (assert.{part})", kind="assert")


def _attach_task_results(outcome: Outcome, pipe: _Pipeline) -> None:
    """Every named task's result, for `{{ step.results.<task> }}`; the one that is the step's result
    is referred to by name rather than stored twice."""
    for name in pipe.named:
        value = pipe.results[name]
        if outcome.result_task is None and value is outcome.result:
            outcome.result_task = name
        else:
            outcome.tasks[name] = value


def _with_overrides(task: dict[str, Any], overrides: dict[str, Any] | None) -> dict[str, Any]:
    return deep_merge(task, overrides) if overrides else task


async def _with_timeout(awaitable: Any, timeout: float | None) -> Any:
    if not timeout:
        return await awaitable
    try:
        return await within(awaitable, timeout)
    except TimeoutError:
        raise ToolError(f"timed out after {timeout:g} s", kind="timeout", retryable=True) from None


def _with_note(error: dict[str, Any] | None, exc: NoetlError) -> dict[str, Any]:
    info = ErrorInfo.from_dict(error) if error else ErrorInfo("error", "task failed", False)
    return info.with_note(f"after the task failed: {exc}").to_dict()


def _input_error(recorded: Any) -> dict[str, Any]:
    """The error of an iteration whose input did not render (the engine's ``__input_error__``)."""
    if isinstance(recorded, dict):
        return ErrorInfo.from_dict(recorded).to_dict()
    return ErrorInfo("template", str(recorded), False).to_dict()  # a command issued before it carried a dict
