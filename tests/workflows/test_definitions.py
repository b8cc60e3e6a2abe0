"""Load-time validation, the reference syntax and the Python builder (no processes)."""

import subprocess
import sys
from pathlib import Path

import pytest

from natsfleet.supervisor.workflows import (
    UnresolvedReference,
    Until,
    Workflow,
    WorkflowDefinitionError,
    check,
    load,
    parse_toml,
    ref,
)
from natsfleet.supervisor.workflows.refs import Scope, render
from tests.procs import REPO_ROOT


def _invalid(text: str) -> list[str]:
    with pytest.raises(WorkflowDefinitionError) as err:
        check(parse_toml(text, default_name="w"))
    return err.value.problems


def test_unknown_step_reference() -> None:
    problems = _invalid(
        """
        [steps.a]
        skill = "s"
        input = { x = "${steps.nope.output.y}" }
        [steps.b]
        skill = "s"
        after = ["ghost"]
        """.replace("        ", "")
    )
    assert "step 'a': ${steps.nope.output.y} refers to undefined step 'nope'" in problems
    assert "step 'b': after names undefined step 'ghost'" in problems


def test_cycle() -> None:
    problems = _invalid(
        '[steps.a]\nskill = "s"\ninput = "${steps.c.output}"\n'
        '[steps.b]\nskill = "s"\nafter = ["a"]\n'
        '[steps.c]\nskill = "s"\ninput = { v = "${steps.b.output}" }\n'
    )
    assert len(problems) == 1 and problems[0].startswith("steps form a cycle: ")
    assert all(name in problems[0] for name in ("a", "b", "c"))


def test_bad_references() -> None:
    problems = _invalid(
        '[steps.a]\nskill = "s"\ninput = { x = "${inputs.q}" }\n'
        '[steps.b]\nskill = "s"\ninput = { x = "${input.q" }\n'
        '[steps.c]\nskill = "s"\ninput = { y = "${steps.a.result}" }\n'
        '[steps.d]\nskill = "s"\ninput = { z = "${item}" }\n'
    )
    assert any("unknown root 'inputs'" in p for p in problems), problems
    assert any("write steps.<name>.output" in p for p in problems), problems
    assert any("${item}: item is not set here" in p for p in problems), problems
    assert any("unclosed reference" in p for p in problems), problems


def test_loop_without_bound_and_back_reference_without_default() -> None:
    unbounded = _invalid(
        '[steps.w]\nskill = "s"\n[loops.l]\nsteps = ["w"]\n'
        'until = { ref = "${steps.w.output.ok}" }\n'
    )
    assert unbounded == ["loop 'l' needs a bound: max_rounds between 1 and 100"]
    back = _invalid(
        '[steps.w]\nskill = "s"\ninput = { notes = "${steps.e.output.notes}" }\n'
        '[steps.e]\nskill = "s"\ninput = "${steps.w.output}"\n'
        '[loops.l]\nsteps = ["w", "e"]\nmax_rounds = 2\n'
        'until = { ref = "${steps.e.output.ok}", equals = true }\n'
    )
    assert len(back) == 1 and "write ${steps.e.output.notes?}" in back[0]


def test_unknown_fields_and_kinds() -> None:
    problems = _invalid('[steps.a]\nskil = "s"\n')
    assert "unknown field `skil`" in problems[0]
    problems = _invalid('[steps.a]\nskill = "s"\napproval = true\n')
    assert problems == ["step 'a': give either skill = ... or approval = true"]


def test_examples_load_and_the_supervisor_refuses_a_bad_folder(tmp_path: Path) -> None:
    catalog = load([REPO_ROOT / "examples" / "workflows"])
    assert catalog.names() == ["content", "travel"]
    travel = catalog.get("travel")
    assert travel is not None and set(travel.skills()) == {
        "parse_trip", "search_flights", "hold_offer", "book", "pay", "add_to_calendar",
        "send_confirmation",
    }  # fmt: skip
    (tmp_path / "bad.toml").write_text('[steps.a]\nskill = "s"\nafter = ["a"]\n')
    cmd = [sys.executable, "-m", "natsfleet.cli.main", "supervisor", "--nats", "nats://0:1"]
    done = subprocess.run(
        [*cmd, "--workflows", str(tmp_path)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2
    assert "workflow 'bad'" in done.stderr and "after names undefined step 'a'" in done.stderr


def test_reference_rendering() -> None:
    scope = Scope(
        run_id="R",
        input={"q": "why", "n": 2},
        outputs={"s": {"list": [{"t": "a"}, {"t": "b"}]}},
        item={"k": 1},
        index=0,
    )
    template = {
        "whole": "${steps.s.output.list.1}",
        "text": "q=${input.q} n=${input.n} item=${item}",
        "missing": "${input.nope?}",
        "literal": "$${input.q}",
        "nested": ["${index}", "${run.id}"],
    }
    assert render(template, scope) == {
        "whole": {"t": "b"},
        "text": 'q=why n=2 item={"k":1}',
        "missing": None,
        "literal": "${input.q}",
        "nested": [0, "R"],
    }
    with pytest.raises(UnresolvedReference, match="no value at 'nope'"):
        render("${input.nope}", scope)


def test_python_builder() -> None:
    wf = Workflow("content", deadline_s=60, required_input=("question",))
    research = wf.step("research", skill="research", input={"question": ref("input.question")})
    until = Until(ref="${steps.edit.output.verdict}", equals="approve")
    with wf.loop("revise", max_rounds=3, until=until):
        write = wf.step(
            "write",
            skill="write",
            input={"findings": research.output(), "notes": "${steps.edit.output.notes?}"},
        )
        wf.step("edit", skill="edit", input={"draft": write.output("draft")})
    definition = wf.definition()
    assert [s.name for s in definition.steps] == ["research", "write", "edit"]
    assert definition.loops[0].steps == ("write", "edit")
    broken = Workflow("broken")
    broken.step("a", skill="s", input={"x": "${steps.zzz.output}"})
    with pytest.raises(WorkflowDefinitionError, match="undefined step 'zzz'"):
        broken.definition()


def test_names_skills_and_numbers_follow_the_edge_rule() -> None:
    """What a workflow's steps will submit must pass protocols/limits.py."""
    long_step = "s" * 129
    problems = _invalid(f'[steps.{long_step}]\nskill = "echo echo"\n')
    assert any("128 at most" in p for p in problems), problems
    assert any("skill 'echo echo' is not a valid skill name" in p for p in problems), problems
    problems = _invalid('budget_usd = 1e9\ndeadline_s = 1e308\n[steps.a]\nskill = "echo"\n')
    assert any("budget_usd must be positive and at most" in p for p in problems), problems
    assert any("deadline_s must be positive and at most" in p for p in problems), problems
    problems = _invalid('[steps.a]\nskill = "echo"\npriority = -1\n')
    assert any("step 'a': priority must be 0 to" in p for p in problems), problems
    with pytest.raises(WorkflowDefinitionError, match="workflow name"):
        check(parse_toml('[steps.a]\nskill = "echo"\n', default_name="w" * 129))
    check(parse_toml('[steps.a]\nskill = "later.skill"\n', default_name="w"))  # dots are fine
