"""A collaborator that exists only after the object that needs it: bound once, typed.

Two objects of a term that need each other (the engine and the workflow
runner) cannot both get the other through their constructor. The one built
first takes a `Late[T]` instead, so its constructor still says what it
depends on; the composition root (service.py) binds it once, right after
building the other. Nothing patches attributes: docs/supervisor.md, "A term,
built whole".
"""

from typing import Generic, TypeVar

T = TypeVar("T")


class Late(Generic[T]):
    """A `T` bound once, after construction; `get()` is None until then."""

    __slots__ = ("_target", "_what")

    def __init__(self, what: str) -> None:
        self._what = what
        self._target: T | None = None

    def bind(self, target: T) -> None:
        if self._target is not None:
            raise RuntimeError(f"{self._what} is bound already")
        self._target = target

    def get(self) -> T | None:
        return self._target
