"""The decider: given the state and an incoming event, which events follow and which work to run.

``Engine.handle`` applies the incoming event, reacts with one handler per event type, and applies
every event it emits before deciding further, so the state after ``handle`` equals the fold of
the returned events. Nothing here performs I/O, reads a clock or draws an id.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from noetl.dsl.aliases import alias_applies
from noetl.dsl.behaviour import plain_dump
from noetl.dsl.render import RenderContext, evaluate_when, render_data, tracing
from noetl.engine import events as ev
from noetl.engine import frames
from noetl.engine.aggregate import aggregate_max_bytes, inline_max_items, looks_like_error
from noetl.engine.commands import Command
from noetl.engine.envelope import envelope, result_kind, workbook_kinds
from noetl.engine.events import Event
from noetl.engine.loop_items import select_items
from noetl.engine.state import ExecutionState, StepRun, apply
from noetl.engine.step_results import StepResults, with_task_results
from noetl.errors import ErrorInfo, NoetlError, TemplateError

if TYPE_CHECKING:
    from noetl.dsl.model import Arc, Playbook, Step


def render_workload_defaults(defaults: dict[str, Any], inputs: Mapping[str, Any],
                             execution_id: str) -> dict[str, Any]:
    """The playbook's workload values with templates that read only the start names rendered.

    ``jobId: "{{ job.uuid }}"`` holds the execution id from the start, as NoETL playbooks expect.
    A value whose template needs anything else (a step's result, a secret, ...) is kept as written,
    as before; payload values are never rendered (they are the caller's data).
    """
    job = {"uuid": execution_id, "execution_id": execution_id}
    context = RenderContext({"workload": inputs, "execution_id": execution_id, "job": job}, inputs)
    rendered = dict(defaults)
    for key, value in defaults.items():
        if _plain_leaf_free(value):
            continue
        try:
            with tracing(strict=True):
                rendered[key] = render_data(value, context, where=f"workload.{key}")
        except NoetlError:
            pass  # reads a name only known later (or a secret): kept as written
    return rendered


def _plain_leaf_free(value: Any) -> bool:
    """Whether ``value`` holds no template at all (most workload values)."""
    if isinstance(value, str):
        return "{{" not in value and "{%" not in value
    if isinstance(value, dict):
        return all(_plain_leaf_free(v) for v in value.values())
    if isinstance(value, list):
        return all(_plain_leaf_free(v) for v in value)
    return True


@dataclass(slots=True, eq=False, repr=False)  # filled in as it runs: compared and shown by identity
class Decision:
    """What the engine decided on one event: the events to record and the commands to run."""

    events: list[Event] = field(default_factory=list)
    commands: list[Command] = field(default_factory=list)


def merge_payload(workload: dict[str, Any], payload: dict[str, Any] | None, *, merge: bool) -> dict[str, Any]:
    """Payload keys replace workload keys (shallow), or deep-merge when ``merge`` is set."""
    if not payload:
        return dict(workload)
    if not merge:
        return {**workload, **payload}
    return deep_merge(workload, payload)


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


class Engine:
    """Pure decisions for one playbook. ``globals_layer`` adds runtime-provided names (keychain, secret)."""

    def __init__(self, playbook: Playbook, *, globals_layer: Mapping[str, Any] | None = None,
                 playbook_text: str = "") -> None:
        self.playbook = playbook
        self.playbook_text = playbook_text  # errors point at its lines
        self.steps = playbook.step_map()
        self.globals_layer: Mapping[str, Any] = globals_layer or {}
        self.predecessors: dict[str, set[str]] = {}
        self._task_cache: dict[str, list[dict[str, Any]]] = {}
        self._routes_render: dict[str, bool] = {}  # step -> whether routing it renders anything
        self.workbook_kinds = workbook_kinds(playbook.workbook)
        for step in playbook.workflow:
            for arc in step.next.arcs:
                if arc.step:
                    self.predecessors.setdefault(arc.step, set()).add(step.step)

    # entry points ----------------------------------------------------------------------
    def start(
        self,
        state: ExecutionState,
        *,
        execution_id: str,
        payload: dict[str, Any] | None = None,
        merge: bool = False,
        parent_execution_id: str | None = None,
        meta: Mapping[str, Any] | None = None,
        entry_step: str | None = None,
        entry_input: dict[str, Any] | None = None,
        reused: list[Event] | None = None,
        strict: bool = False,
    ) -> Decision:
        """``meta`` adds to ``playbook.initialized`` (a rerun's origin, a schedule's fire time);
        ``entry_step`` and ``reused`` (``step.reused`` events) start a rerun at a later step;
        ``strict``: undefined names in templates are errors (also ``executor.spec.strict``)."""
        raw = merge_payload(self.playbook.workload, payload, merge=merge)
        workload = merge_payload(render_workload_defaults(self.playbook.workload, raw, execution_id), payload,
                                 merge=merge)
        init = Event(
            execution_id, ev.PLAYBOOK_INITIALIZED, status="running", result=workload,
            meta={"path": self.playbook.path, "name": self.playbook.metadata.name,
                  "parent_execution_id": parent_execution_id, **(meta or {})},
        )
        if strict:
            init.meta["strict"] = True  # in the log, so every runtime and every replay renders alike
        decision = Decision()
        self._emit(state, decision, init)
        self._emit(state, decision, Event(execution_id, ev.WORKFLOW_INITIALIZED, status="running",
                                          meta={"entry_step": entry_step or self.playbook.entry_step,
                                                **({"entry_input": entry_input} if entry_input else {})}))
        for event in reused or []:
            event.execution_id = execution_id
            self._emit(state, decision, event)
        self._advance(state, decision)
        return decision

    def handle(self, state: ExecutionState, event: Event) -> Decision:
        """React to an event from outside the engine (a call report or a cancellation).

        The caller's event is never changed: the engine works on its own copy, which is the first
        event of the decision (what gets recorded), e.g. with the `set` it applied, or turned into a
        `call.error` when the step's `set` could not be evaluated.
        """
        event = event.own_copy()
        decision = Decision()
        if event.event_type == ev.EXECUTION_RESUMED:
            self._emit(state, decision, event)  # reopens the execution (see engine.resume)
            self._advance(state, decision)
            return decision
        if state.finished:
            return decision  # nothing changes a finished execution (late reports are ignored)
        if event.event_type in (ev.CALL_DONE, ev.CALL_ERROR):
            self._on_call_report(state, decision, event)
        elif event.event_type == ev.EXECUTION_CANCELLED:
            self._emit(state, decision, event)
            return decision
        else:
            raise ValueError(f"the engine does not accept {event.event_type!r} from outside")
        self._advance(state, decision)
        return decision

    # helpers ---------------------------------------------------------------------------
    def _emit(self, state: ExecutionState, decision: Decision, event: Event) -> None:
        apply(state, event)
        decision.events.append(event)

    def _issue(self, state: ExecutionState, decision: Decision, run: StepRun, after: int) -> None:
        """Commands for the loop work the window lets out now: positions ``after`` up to ``issued_count``."""
        for position in range(after, issued_count(run)):
            index = run.loop.order[position] if run.loop is not None else position  # a frame's number
            decision.commands.append(self._iteration_command(state, run.name, index))

    def strict(self, state: ExecutionState) -> bool:
        return state.strict or self.playbook.executor.spec.strict

    def context(self, state: ExecutionState, local: Mapping[str, Any] | None = None) -> RenderContext:
        base = {
            "workload": state.workload,
            "ctx": state.ctx,
            "vars": state.ctx,
            "execution_id": state.execution_id,
            "job": {"uuid": state.execution_id, "execution_id": state.execution_id},
        }
        results = StepResults(state.results, state.task_results) if state.task_results else state.results
        layers: list[Mapping[str, Any]] = [base, results, state.ctx, state.workload, self.globals_layer]
        if local:
            layers.insert(0, local)
        return RenderContext(*layers)

    def _advance(self, state: ExecutionState, decision: Decision) -> None:
        """Schedule waiting steps whose fan-in is complete; finish the execution when idle."""
        progressed = True
        while progressed and not state.finished:
            progressed = False
            if not state.failed:
                for target in list(state.waiting):
                    if self._ready(state, target):
                        self._enter_step(state, decision, target)
                        progressed = True
                        break
                if not progressed and state.waiting and not state.running:
                    # A cycle of steps waiting on each other: run the oldest instead of stalling.
                    self._enter_step(state, decision, next(iter(state.waiting)))
                    progressed = True
            if not progressed and not state.running and (state.failed or not state.waiting):
                self._finish_execution(state, decision)

    def _ready(self, state: ExecutionState, target: str) -> bool:
        if target in state.running:
            return False
        return not any(p in state.running or p in state.waiting for p in self.predecessors.get(target, ()))

    # scheduling a step -----------------------------------------------------------------
    def _enter_step(self, state: ExecutionState, decision: Decision, name: str) -> None:
        step = self.steps[name]
        arc_input = state.waiting.get(name) or {}
        entry = state.entries.get(name, 0) + 1
        enter = Event(state.execution_id, ev.STEP_ENTER, node_name=name, status="running", meta={"entry": entry})
        if step.input and name in state.scheduled_by:  # recorded for `result` in its input (iterations too)
            enter.meta["scheduled_by"] = state.scheduled_by[name]
        if step.loop is None and not step.input:  # nothing to render: no trace to collect
            failure = None
            enter.result = {"input": dict(arc_input), "arc_input": arc_input}
        else:
            with tracing(name, strict=self.strict(state)) as trace:
                failure = self._render_entry(state, step, enter, arc_input)
            if trace.warnings:
                enter.meta["warnings"] = trace.warnings
        if failure is not None:
            enter.result = {"input": {}, "arc_input": arc_input}
            self._emit(state, decision, enter)
            self._report_engine_error(state, decision, name, failure, loop_index=None)
            return
        self._emit(state, decision, enter)
        run = state.running[name]
        if run.loop is None and run.cursor is None:
            local = {**run.arc_input, "input": run.input}
            decision.commands.append(self._command(state, step, run, run.input, None, local))
        elif run.loop is not None and run.loop.finished:  # empty, or every iteration kept by a resume
            self._finish_step(state, decision, step, run)
        else:
            self._issue(state, decision, run, after=0)

    def _render_entry(self, state: ExecutionState, step: Step, enter: Event,
                      arc_input: dict[str, Any]) -> NoetlError | None:
        """The step's input (or loop items) into ``enter``; the error when they cannot be rendered."""
        try:
            if step.loop is not None and step.loop.cursor is not None:
                enter.result = {"input": {}, "arc_input": arc_input}
                enter.meta["cursor"] = {"max_in_flight": self._max_in_flight(state, step),
                                        "inline_max_items": inline_max_items(step.output)}
            elif step.loop is not None:
                items = self._loop_items(state, step, arc_input)
                enter.result = {"input": {}, "arc_input": arc_input, "items": items}
                enter.meta["loop"] = {"total": len(items), "max_in_flight": self._max_in_flight(state, step)}
                kept = sum(1 for index in state.resumed_iterations.get(step.step, {}) if 0 <= index < len(items))
                if kept:  # a resumed loop: what displays count as done before any call reports
                    enter.meta["loop"]["kept"] = kept
                if len(items) > inline_max_items(step.output):
                    enter.meta["loop"]["by_ref"] = True  # the aggregate's results by reference
                if aggregate_max_bytes(step.output) is not None:  # recorded only when set: a replay folds alike
                    enter.meta["loop"]["aggregate_max_bytes"] = aggregate_max_bytes(step.output)
            else:
                local = self._scheduler_result(state, enter.meta.get("scheduled_by"))
                args = self._render_input(state, step, arc_input, local=local)
                enter.result = {"input": args, "arc_input": arc_input}
        except NoetlError as exc:
            return exc
        return None

    def _loop_items(self, state: ExecutionState, step: Step, arc_input: dict[str, Any]) -> list[Any]:
        assert step.loop is not None
        context = self.context(state, arc_input)
        items = render_data(step.loop.in_, context, where=f"step {step.step!r} loop.in")
        if items is None:
            return []
        if isinstance(items, dict):
            items = [{"key": k, "value": v} for k, v in items.items()]
        if not isinstance(items, list | tuple):
            raise TemplateError(f"step {step.step!r} loop.in: expected a list, got {type(items).__name__}",
                                field="loop.in")
        return select_items(list(items), step.loop, context, step.step)

    def _max_in_flight(self, state: ExecutionState, step: Step) -> int:
        """How many iterations run at once; a templated `max_in_flight` is rendered as the loop starts."""
        assert step.loop is not None
        spec = step.loop.spec
        if spec.mode != "parallel" and step.loop.cursor is None:
            return 1  # a cursor loop's max_in_flight counts its frames
        value = render_data(spec.max_in_flight, self.context(state), where=f"step {step.step!r} loop.spec.max_in_flight")
        try:
            width = int(value)
        except (TypeError, ValueError):
            raise TemplateError(f"step {step.step!r} loop.spec.max_in_flight: expected a positive integer, "
                                f"got {value!r}", field="loop.spec.max_in_flight") from None
        if width < 1:
            raise TemplateError(f"step {step.step!r} loop.spec.max_in_flight: must be at least 1, got {width}",
                                field="loop.spec.max_in_flight")
        return width

    def _result_kind(self, step: Step) -> str | None:
        return result_kind(self._tasks(step), self.workbook_kinds)

    def _scheduler_result(self, state: ExecutionState, scheduler: str | None) -> dict[str, Any] | None:
        """`result` in a step's input: the result of the step whose arc scheduled it, unless a step or
        a workload key is itself named `result` (SPEC section 3)."""
        if scheduler is None or scheduler not in state.results or not alias_applies("result", self.steps, state.workload):
            return None
        return {"result": state.results[scheduler]}

    def _render_input(self, state: ExecutionState, step: Step, arc_input: dict[str, Any],
                      local: Mapping[str, Any] | None) -> dict[str, Any]:
        if not step.input:
            return dict(arc_input)  # nothing to render: no names to build for it
        # The names an arc's `with` passed are in scope, as `{{ data_from_a }}` (the v1 habit, seed 000).
        scope = {**arc_input, **local} if local else arc_input
        rendered = render_data(step.input, self.context(state, scope), where=f"step {step.step!r} input")
        return {**rendered, **arc_input}

    def _iteration_command(self, state: ExecutionState, name: str, index: int) -> Command:
        step = self.steps[name]
        run = state.running[name]
        if run.cursor is not None:
            return frames.frame_command(self, state, step, run, index)
        assert run.loop is not None and step.loop is not None
        local = {**run.arc_input, **self._iteration_local(step, run, index)}
        if step.input and "result" not in local and (scheduler := self._scheduler_result(state, run.scheduled_by)):
            local.update(scheduler)
        with tracing(name, strict=self.strict(state)) as trace:
            try:
                args = self._render_input(state, step, run.arc_input, local)
            except NoetlError as exc:
                # Reported as this iteration's error; the decider records it when the report comes back.
                args = {"__input_error__": ErrorInfo.template(exc).to_dict()}
        local["input"] = args
        command = self._command(state, step, run, args, index, local)
        command.warnings = trace.warnings  # reported with the iteration's call event
        return command

    @staticmethod
    def _iteration_local(step: Step, run: StepRun, index: int) -> dict[str, Any]:
        """The loop names of one iteration: `iter.<iterator>`, `<iterator>`, `iter._index`, `loop.*`, `_loop.*`,
        `<step>.result_index`, `loop_index`."""
        assert run.loop is not None and step.loop is not None
        item = run.loop.items[index]
        iterator = step.loop.iterator
        total = run.loop.total
        return {
            # v1 iterators bound `<step>.result_index` (from 0) in their task, e.g. a save's row key
            step.step: {"result_index": index},
            "iter": {iterator: item, "_index": index, "index": index},
            iterator: item,
            "loop": {"index": index + 1, "index0": index, "first": index == 0, "last": index == total - 1,
                     "length": total},
            # v1 iterators' names: `_loop.index` counts from 0, `_loop.count` is the number of elements
            "_loop": {"index": index, "current_index": index, "count": total, "size": total},
            "loop_index": index,  # NoETL's loop playbooks read the bare name (from 0)
        }

    def _command(self, state: ExecutionState, step: Step, run: StepRun, args: dict[str, Any],
                 index: int | None, local: dict[str, Any]) -> Command:
        suffix = "" if index is None else f"/{index}"
        tasks = self._tasks(step)
        timeout = step.spec.timeout if step.spec else None
        return Command(
            command_id=f"{state.execution_id}/{step.step}/{run.entry}{suffix}",
            execution_id=state.execution_id, step=step.step, tasks=tasks, context=self.context(state, local),
            local=local, args=args,
            arc_input=run.arc_input, loop_index=index, entry=run.entry, timeout=timeout, strict=self.strict(state),
        )

    def _tasks(self, step: Step) -> list[dict[str, Any]]:
        cached = self._task_cache.get(step.step)
        if cached is None:
            cached = [plain_dump(t) for t in step.tool] or [{"kind": "noop"}]
            self._task_cache[step.step] = cached
        return cached

    # reports from tools ----------------------------------------------------------------
    def _on_call_report(self, state: ExecutionState, decision: Decision, event: Event) -> None:
        name = event.node_name or ""
        run = state.running.get(name)
        if run is None or run.done:
            return  # duplicate or late report: already accounted for
        step = self.steps[name]
        if run.loop is not None and event.event_type == ev.CALL_DONE and step.set:
            # A loop step's `set` applies after each successful iteration, with that iteration's output.
            with tracing(name, strict=self.strict(state)) as trace:
                self._render_iteration_set(state, step, run, event)
            if trace.warnings:
                event.meta["warnings"] = [*(event.meta.get("warnings") or []), *trace.warnings]
        elif run.cursor is not None and event.event_type == ev.CALL_DONE and step.set:
            frames.apply_frame_set(self, state, step, event)
        issued_before = issued_count(run)
        self._emit(state, decision, event)
        if run.done or frames_finished(run):
            self._finish_step(state, decision, step, run)
        elif run.loop is not None or run.cursor is not None:
            self._issue(state, decision, run, after=issued_before)

    def _render_iteration_set(self, state: ExecutionState, step: Step, run: StepRun, event: Event) -> None:
        """The loop step's `set` for one iteration into ``event``; a render error fails the iteration."""
        assert run.loop is not None
        try:
            output = envelope(True, event.result, None, kind=self._result_kind(step))
            local = {"output": output, "result": event.result, "response": event.result}
            index = event.meta.get("loop_index")
            if isinstance(index, int) and 0 <= index < run.loop.total:
                local = {**self._iteration_local(step, run, index), **local}
            event.meta["set"] = {**(event.meta.get("set") or {}),
                                 **self._render_set(state, step.set, local, f"step {step.step!r} set")}
        except NoetlError as exc:
            event.event_type, event.status, event.result = ev.CALL_ERROR, "failed", None
            event.error = self._located(step.step, ErrorInfo.template(exc).to_dict())

    def _report_engine_error(self, state: ExecutionState, decision: Decision, name: str,
                             exc: NoetlError, loop_index: int | None) -> None:
        error = self._located(name, ErrorInfo.from_exception(exc).to_dict())
        meta: dict[str, Any] = {"loop_index": loop_index} if loop_index is not None else {}
        self._on_call_report(state, decision, Event(state.execution_id, ev.CALL_ERROR, node_name=name,
                                                     status="failed", error=error, meta=meta))

    # finishing a step: set, arcs, step.exit ---------------------------------------------
    def _finish_step(self, state: ExecutionState, decision: Decision, step: Step, run: StepRun) -> None:
        name = step.step
        loop = run.loop or run.cursor
        if loop is not None:
            aggregate = loop.aggregate(execution_id=state.execution_id, step=name, entry=run.entry)
            ok = loop.failed == 0
            self._emit(state, decision, Event(state.execution_id, ev.LOOP_DONE, node_name=name,
                                              status="completed" if ok else "failed", result=aggregate))
            result, error, event_name = aggregate, None, ev.LOOP_DONE
            if not ok:
                error = _loop_error(name, loop.failed, loop.total, loop.first_error())
        else:
            ok = run.error is None
            result, error = run.result, run.error
            event_name = ev.CALL_DONE if ok else ev.CALL_ERROR
        exit_event = Event(state.execution_id, ev.STEP_EXIT, node_name=name,
                           status="completed" if ok else "failed", result=result if ok or loop else None,
                           error=None if ok else self._step_error(step, error))
        if not self._routing_renders(step):  # nothing to render: no trace to collect, nothing can fail
            self._route(state, step, run, exit_event, event_name, ok, result, error)
            self._emit(state, decision, exit_event)
            return
        with tracing(name, strict=self.strict(state)) as trace:
            try:
                self._route(state, step, run, exit_event, event_name, ok, result, error)
            except NoetlError as exc:
                exit_event.status = "failed"
                exit_event.error = self._located(name, _routing_error(exit_event.error, exc))
                exit_event.meta = {"handled": False}
        if trace.warnings:
            exit_event.meta["warnings"] = trace.warnings
        self._emit(state, decision, exit_event)

    def _step_error(self, step: Step, error: dict[str, Any] | None) -> dict[str, Any]:
        error = dict(error or {})
        message = str(error.get("message") or "failed").strip()
        if "\n" in message:
            # The cause stays one line; a multi-line driver message is kept whole in `detail`.
            error.setdefault("detail", message)
            message = message.splitlines()[0]
        prefix = f"step {step.step!r}"
        if not message.startswith(prefix):
            error["message"] = f"{prefix} ({step.kind}) failed: {message}"
        error.setdefault("step", step.step)
        error.setdefault("tool", step.kind)
        return error

    @staticmethod
    def _routed_event(name: str, step: Step, result: Any, error: dict[str, Any] | None) -> dict[str, Any]:
        """`event` while routing: a call.error carries the error as its payload (a failed loop's
        loop.done still carries the aggregate)."""
        return {"name": name, "step": step.step, "payload": result if result is not None else error}

    def _route(self, state: ExecutionState, step: Step, run: StepRun, exit_event: Event, event_name: str,
               ok: bool, result: Any, error: dict[str, Any] | None) -> None:
        if not self._routing_renders(step):
            fired = self._select_arcs(state, step, None, ok, {})
            exit_event.meta = {"set": {}, "fire": [[arc.step, {}] for arc in fired if arc.step],
                               "handled": ok or bool(fired)}
            return
        output = envelope(ok, result, error, kind=None if run.loop else self._result_kind(step))
        local = {
            **run.arc_input,  # names the arc that scheduled the step passed
            **run.names,  # bare keys of task-level `set`
            step.step: with_task_results(result, run.tasks), "output": output, "error": error or {}, "result": result, "response": result,
            "input": run.input, "event": self._routed_event(event_name, step, result, error),
        }
        set_updates: dict[str, Any] = {}
        if ok and step.set and run.loop is None and run.cursor is None:
            set_updates.update(self._render_set(state, step.set, local, f"step {step.step!r} set"))
        fired = self._select_arcs(state, step, local, ok, set_updates)
        fire: list[list[Any]] = []
        for arc in fired:
            if arc.set:
                set_updates.update(self._render_set(state, arc.set, local, f"step {step.step!r} arc set",
                                                    pending=set_updates))
            if arc.step:
                # The target's input is rendered as it is scheduled: after the step's and the arc's `set`.
                arc_input = render_data(arc.input, self._routing_context(state, local, set_updates),
                                        where=f"step {step.step!r} arc to {arc.step!r}") if arc.input else {}
                fire.append([arc.step, arc_input])
        exit_event.meta = {"set": set_updates, "fire": fire, "handled": ok or bool(fired)}

    def _routing_renders(self, step: Step) -> bool:
        """Whether finishing ``step`` renders anything (a `set`, an arc's condition, `set` or
        `input`); a step that does not is routed without building the names templates would see."""
        renders = self._routes_render.get(step.step)
        if renders is None:
            renders = bool(step.set) or any(isinstance(arc.when, str) or arc.set or arc.input
                                            for arc in step.next.arcs)
            self._routes_render[step.step] = renders
        return renders

    def _select_arcs(self, state: ExecutionState, step: Step, local: dict[str, Any] | None, ok: bool,
                     pending_set: dict[str, Any]) -> list[Arc]:
        """``local`` None: no arc has a condition to render (:meth:`_routing_renders`)."""
        context = self._routing_context(state, local, pending_set) if local is not None else None
        exclusive = step.next.spec.mode == "exclusive"
        primary = [a for a in step.next.arcs if not a.fallback]
        fired = self._matching(step, primary, context, ok, exclusive)
        if not fired:
            fallbacks = [a for a in step.next.arcs if a.fallback]
            fired = self._matching(step, fallbacks, context, ok, exclusive=False)
        return fired

    def _matching(self, step: Step, arcs: list[Arc], context: RenderContext | None, ok: bool,
                  exclusive: bool) -> list[Arc]:
        fired: list[Arc] = []
        group: int | None = None
        for arc in arcs:
            if fired and exclusive:
                if group is not None and arc.group == group:
                    fired.append(arc)
                    continue
                break
            if not ok and arc.when is None:
                continue  # after a failure only explicit conditions are considered
            if arc.when is None or isinstance(arc.when, bool):
                matched = arc.when is not False
            else:
                assert context is not None  # a condition to render: the caller built the names
                target = arc.step or "(set only)"
                matched = evaluate_when(arc.when, context, where=f"step {step.step!r} arc to {target!r} when")
            if matched:
                fired.append(arc)
                group = arc.group
        return fired

    def _routing_context(self, state: ExecutionState, local: dict[str, Any],
                         pending_set: dict[str, Any]) -> RenderContext:
        if not pending_set:
            return self.context(state, local)
        # Step `set` writes are visible to arc conditions before they are stored.
        from noetl.engine.state import set_path

        ctx = _copy_nested(state.ctx)
        for key, value in pending_set.items():
            set_path(ctx, key, value)
        return RenderContext(local, {"ctx": ctx, "vars": ctx}, ctx, self.context(state))

    def _render_set(self, state: ExecutionState, updates: dict[str, Any], local: Mapping[str, Any],
                    where: str, pending: dict[str, Any] | None = None) -> dict[str, Any]:
        context = self._routing_context(state, dict(local), pending or {})
        out: dict[str, Any] = {}
        for key, value in updates.items():
            path = _ctx_key(key)
            if path is None:
                continue
            out[path] = render_data(value, context, where=f"{where} {key}")
        return out

    def _located(self, step: str, error: dict[str, Any]) -> dict[str, Any]:
        from noetl.dsl.codelines import with_playbook_line  # parses the playbook text only for an error

        return with_playbook_line(self.playbook_text, step, error)

    # finishing the execution -----------------------------------------------------------
    def _finish_execution(self, state: ExecutionState, decision: Decision) -> None:
        eid = state.execution_id
        if state.failed:
            error = ErrorInfo("execution", state.error or "execution failed").to_dict()
            self._emit(state, decision, Event(eid, ev.WORKFLOW_FAILED, status="failed", error=error))
            self._emit(state, decision, Event(eid, ev.PLAYBOOK_FAILED, status="failed", error=error))
            return
        final = self.playbook.executor.spec.final_step
        source = final if final and final in state.results else state.last_completed
        result = state.results.get(source) if source else None
        self._emit(state, decision, Event(eid, ev.WORKFLOW_COMPLETED, status="completed", result=result))
        self._emit(state, decision, Event(eid, ev.PLAYBOOK_COMPLETED, status="completed", result=result))


def _routing_error(step_error: dict[str, Any] | None, exc: NoetlError) -> dict[str, Any]:
    """The step's error when routing it failed. A step that already failed keeps its own error (what
    the user must see: kind, message, line); the arc or `set` that could not evaluate becomes a note."""
    if step_error is None:
        return ErrorInfo.template(exc, kind="routing").to_dict()
    return ErrorInfo.from_dict(step_error).with_note(f"routing the failure: {exc}").to_dict()


def issued_count(run: StepRun) -> int:
    """The in-flight window of a loop step: how many iterations (or cursor frames) are issued so far.

    The first ``max_in_flight`` go out when the step is entered; each report lets one more out, until
    every iteration is issued. A cursor loop lets no frame out after the report that drained it.
    Derived from what the fold recorded, so a replayed or caught-up state knows what is in flight.
    """
    if run.cursor is not None:
        return run.cursor.max_in_flight + run.cursor.open_reports
    if run.loop is None:
        return 0
    return min(len(run.loop.order), run.loop.max_in_flight + len(run.loop.reported))


def frames_finished(run: StepRun) -> bool:
    """A cursor loop ends once it is drained and every frame issued has reported."""
    return run.cursor is not None and run.cursor.drained and len(run.cursor.reported) >= issued_count(run)


def _loop_error(step: str, failed: int, total: int, first: Any) -> dict[str, Any]:
    """A loop step's error: how many iterations failed, and the first one's message and playbook line."""
    message = str(first["message"]) if looks_like_error(first) else "see the step result"
    info = ErrorInfo("loop", f"step {step!r}: {failed} of {total} iterations failed: {message}", False)
    line = first.get("playbook_line") if isinstance(first, dict) else None
    return (info.at_line(line) if isinstance(line, int) and not isinstance(line, bool) else info).to_dict()


def _ctx_key(key: str) -> str | None:
    """Map a `set` key to a ctx path: `ctx.a`, `vars.a` and bare `a` write ctx; `iter.*` is task-local."""
    if key.startswith(("ctx.", "vars.")):
        return key.split(".", 1)[1]
    if key.startswith("iter."):
        return None
    return key


def _copy_nested(value: dict[str, Any]) -> dict[str, Any]:
    return {k: _copy_nested(v) if isinstance(v, dict) else v for k, v in value.items()}
