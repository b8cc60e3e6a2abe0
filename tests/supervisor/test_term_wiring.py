"""A supervisor term is built whole: constructor injection, no attribute patching,
no reaching into another object's private attributes (docs/supervisor.md)."""

import ast
from pathlib import Path

import pytest

from natsfleet.supervisor.hooks import Late
from natsfleet.supervisor.registry import ListenerRelay, Registry

SUPERVISOR = Path(__file__).resolve().parents[2] / "supervisor"


def _assigned_attributes(tree: ast.AST) -> list[ast.Attribute]:
    targets: list[ast.expr] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            targets += node.targets
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets.append(node.target)
    found: list[ast.Attribute] = []
    while targets:
        target = targets.pop()
        if isinstance(target, ast.Tuple | ast.List):
            targets += target.elts
        elif isinstance(target, ast.Attribute):
            found.append(target)
    return found


def test_the_composition_root_patches_no_other_object() -> None:
    """service.py builds the term: it may set its own attributes (`self.x = ...`),
    never one of another object (`engine.metrics = ...`, `self.registry.listener = ...`)."""
    tree = ast.parse((SUPERVISOR / "service.py").read_text(encoding="utf-8"))
    patched = [
        f"line {target.lineno}: {ast.unparse(target)}"
        for target in _assigned_attributes(tree)
        if not (isinstance(target.value, ast.Name) and target.value.id == "self")
    ]
    assert patched == []


def test_the_check_sees_patching() -> None:
    tree = ast.parse("engine.metrics = m\nself.registry.listener = e\na.b, self.c = 1, 2\n")
    assert [ast.unparse(t) for t in _assigned_attributes(tree)] == [
        "self.c",
        "a.b",
        "self.registry.listener",
        "engine.metrics",
    ]


def test_no_module_reads_another_objects_private_attributes() -> None:
    reached = []
    for path in sorted(SUPERVISOR.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
            ):
                reached.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
    assert reached == []


def test_a_late_hook_is_bound_once() -> None:
    hook = Late[str]("the test's hook")
    assert hook.get() is None
    hook.bind("runner")
    assert hook.get() == "runner"
    with pytest.raises(RuntimeError, match="bound already"):
        hook.bind("another")


class _Heard:
    def __init__(self) -> None:
        self.news: list[str] = []

    def instance_gone(self, instance_id: str, reason: str) -> None:
        self.news.append(f"gone {instance_id}")

    def heartbeat(self, instance: object, heartbeat: object) -> None:
        self.news.append("heartbeat")

    def capacity_changed(self) -> None:
        self.news.append("capacity")

    def unknown_instance(self, instance_id: str) -> None:
        self.news.append(f"unknown {instance_id}")


def test_the_relay_passes_news_only_while_a_term_listens() -> None:
    relay = ListenerRelay()
    registry = Registry(10.0, relay)
    heard = _Heard()
    relay.unknown_instance("i0")  # standby: dropped
    relay.listen(heard)
    relay.unknown_instance("i1")
    relay.instance_gone("i1", "restarted")
    relay.capacity_changed()
    relay.stop()
    relay.capacity_changed()
    assert heard.news == ["unknown i1", "gone i1", "capacity"]
    assert registry.listener is relay
