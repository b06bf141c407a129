"""One tiny registry used for data sets, models and (later) runtimes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from edgecv.core.errors import EdgecvError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to entries; unknown or duplicate names are clear errors that list what exists."""

    def __init__(self, kind: str, error: type[EdgecvError] = EdgecvError) -> None:
        self.kind = kind
        self._error = error
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: register the decorated object under ``name``."""

        def add(entry: T) -> T:
            self.add(name, entry)
            return entry

        return add

    def add(self, name: str, entry: T) -> None:
        """Register ``entry``; a name may be registered once."""
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = entry

    def get(self, name: str) -> T:
        """The entry called ``name``, or an error naming the valid choices."""
        try:
            return self._entries[name]
        except KeyError:
            raise self._error(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        """Registered names, in registration order."""
        return list(self._entries)

    def items(self) -> Iterator[tuple[str, T]]:
        """(name, entry) pairs in registration order."""
        return iter(self._entries.items())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)
