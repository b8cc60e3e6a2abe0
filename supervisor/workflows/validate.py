"""Load-time validation of a workflow definition, and the graph it derives.

Everything that can be decided without the fleet is decided here, before a
run starts: names, references (syntax, roots, the steps they name, where
`item`/`index`/`round` may appear), `after` lists, loops (members, a bound, a
condition, back-references), approval branches and cycles. What belongs to
one step kind is asked of that kind (`kinds.py`). Skills are checked at
submit time against the live agents (see `runner.py`).
"""

import re
from dataclasses import dataclass

from natsfleet.protocols import ID_MAX_CHARS, is_id
from natsfleet.protocols.limits import MAX_BUDGET_USD, MAX_DURATION_S
from natsfleet.supervisor.workflows.errors import WorkflowDefinitionError
from natsfleet.supervisor.workflows.kinds import kind_of
from natsfleet.supervisor.workflows.model import MAX_ROUNDS, Step, WorkflowDef
from natsfleet.supervisor.workflows.refs import Ref, refs_in, refs_problems

_STEP_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class Graph:
    """What a valid definition implies for scheduling."""

    # step -> steps that must be completed (this round, for a step of the same loop).
    deps: dict[str, frozenset[str]]
    # step -> steps of its own loop whose previous-round output it reads.
    back_refs: dict[str, frozenset[str]]
    loop_of: dict[str, str]
    # on_reject target -> the approval step whose refusal runs it.
    branches: dict[str, str]


def _step_refs(step: Step) -> list[Ref]:
    return kind_of(step).refs()


def build_graph(defn: WorkflowDef) -> Graph:
    """The graph of a definition that passed `check` (no validation here)."""
    loop_of = {name: loop.name for loop in defn.loops for name in loop.steps}
    order = {name: i for loop in defn.loops for i, name in enumerate(loop.steps)}
    branches = {b: s.name for s in defn.steps if (b := s.branch()) is not None}
    deps: dict[str, frozenset[str]] = {}
    back: dict[str, frozenset[str]] = {}
    for step in defn.steps:
        named = {r.step for r in _step_refs(step) if r.step is not None} | set(step.after)
        if step.name in branches:
            named.add(branches[step.name])
        loop = loop_of.get(step.name)
        backward = {
            n for n in named
            if loop is not None and loop_of.get(n) == loop and order[n] >= order[step.name]
        }  # fmt: skip
        deps[step.name] = frozenset(named - backward)
        back[step.name] = frozenset(backward)
    return Graph(deps=deps, back_refs=back, loop_of=loop_of, branches=branches)


def check(defn: WorkflowDef, *, source: str = "") -> Graph:
    """Raise WorkflowDefinitionError listing every problem, else return the graph."""
    problems = _names(defn) + _steps(defn) + _loops(defn)
    if not problems:
        graph = build_graph(defn)
        problems += _back_refs(defn, graph) + _cycles(defn, graph)
    if problems:
        raise WorkflowDefinitionError(defn.name, problems, source=source)
    return build_graph(defn)


def _names(defn: WorkflowDef) -> list[str]:
    problems = []
    if not is_id(defn.name):  # it travels in Submit.workflow (protocols/limits.py)
        problems.append(
            f"workflow name {defn.name!r} must be 1 to {ID_MAX_CHARS} characters of [A-Za-z0-9_-]"
        )
    if not defn.steps:
        problems.append("a workflow needs at least one step")
    seen: set[str] = set()
    for step in defn.steps:
        if not _STEP_NAME.match(step.name) or len(step.name) > ID_MAX_CHARS:
            problems.append(
                f"step name {step.name!r} must match [a-z][a-z0-9_]* ({ID_MAX_CHARS} at most)"
            )
        if step.name in seen:
            problems.append(f"step {step.name!r} is declared twice")
        seen.add(step.name)
    # The same bounds as a Submit's (protocols/limits.py): steps carry them.
    if defn.deadline_s is not None and not 0 < defn.deadline_s <= MAX_DURATION_S:
        problems.append(f"deadline_s must be positive and at most {MAX_DURATION_S:.0f}")
    if defn.budget_usd is not None and not 0 < defn.budget_usd <= MAX_BUDGET_USD:
        problems.append(f"budget_usd must be positive and at most {MAX_BUDGET_USD:.0f}")
    return problems


def _steps(defn: WorkflowDef) -> list[str]:
    known = {s.name for s in defn.steps}
    in_loop = {name for loop in defn.loops for name in loop.steps}
    problems = refs_problems("output", defn.output, known, set())
    for step in defn.steps:
        where = f"step {step.name!r}"
        kind = kind_of(step)
        allowed = {"round"} if step.name in in_loop else set()
        allowed |= kind.scope_roots()
        for label, template in step.templates().items():
            problems += refs_problems(f"{where}{label}", template, known, allowed)
        problems += kind.problems(known)
        for name in step.after:
            if name not in known or name == step.name:
                problems.append(f"{where}: after names undefined step {name!r}")
    return problems


def _loops(defn: WorkflowDef) -> list[str]:
    problems: list[str] = []
    steps = {s.name: s for s in defn.steps}
    owner: dict[str, str] = {}
    branch_targets = {b for s in defn.steps if (b := s.branch()) is not None}
    for loop in defn.loops:
        where = f"loop {loop.name!r}"
        if not loop.steps:
            problems.append(f"{where} has no steps")
        if loop.max_rounds is None or not 1 <= loop.max_rounds <= MAX_ROUNDS:
            problems.append(f"{where} needs a bound: max_rounds between 1 and {MAX_ROUNDS}")
        if loop.until is None:
            problems.append(f"{where} needs an until condition")
        else:
            problems += refs_problems(f"{where} until", loop.until.ref, set(steps), set())
        for name in loop.steps:
            step = steps.get(name)
            if step is None:
                problems.append(f"{where} names undefined step {name!r}")
                continue
            if name in owner:
                problems.append(f"step {name!r} is in loops {owner[name]!r} and {loop.name!r}")
            owner[name] = loop.name
            if not step.may_loop or name in branch_targets:
                what = "an on_reject branch" if step.may_loop else f"a {step.kind_name()} step"
                problems.append(f"{where}: step {name!r} ({what}) cannot loop")
    return problems


def _back_refs(defn: WorkflowDef, graph: Graph) -> list[str]:
    problems = []
    for step in defn.steps:
        for ref in _step_refs(step):
            if ref.step in graph.back_refs[step.name] and not ref.optional:
                problems.append(
                    f"step {step.name!r}: ${{{ref.text}}} reads the previous round of "
                    f"{ref.step!r}, which has no output in round 1: write ${{{ref.text}?}}"
                )
    for loop in defn.loops:
        if loop.until is not None:
            for ref in refs_in(loop.until.ref):
                if ref.step not in loop.steps:
                    problems.append(f"loop {loop.name!r} until must read a step of the loop")
    return problems


def _edges(defn: WorkflowDef, graph: Graph) -> dict[str, set[str]]:
    """deps, plus: a step that reads a loop's step waits for every step of that loop."""
    members: dict[str, list[str]] = {loop.name: list(loop.steps) for loop in defn.loops}
    edges: dict[str, set[str]] = {}
    for name, deps in graph.deps.items():
        edges[name] = set(deps)
        for dep in deps:
            loop = graph.loop_of.get(dep)
            if loop is not None and graph.loop_of.get(name) != loop:
                edges[name].update(members[loop])
    return edges


def _cycles(defn: WorkflowDef, graph: Graph) -> list[str]:
    edges = _edges(defn, graph)
    state: dict[str, int] = {}  # 1 visiting, 2 done
    stack: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = 1
        stack.append(name)
        for dep in sorted(edges.get(name, ())):
            if state.get(dep) == 1:
                return [*stack[stack.index(dep) :], dep]
            if dep not in state and (found := visit(dep)) is not None:
                return found
        stack.pop()
        state[name] = 2
        return None

    for step in defn.steps:
        if step.name not in state and (cycle := visit(step.name)) is not None:
            return [f"steps form a cycle: {' -> '.join(reversed(cycle))}"]
    return []
