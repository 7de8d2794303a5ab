"""One registry class for everything the project finds by name: networks (per role), generator
loss terms and adversarial objectives.

A registry maps names to entries (classes or builder functions), filled by a decorator at
import time. Every registry follows the same two rules: a name is registered once (a second,
different entry under a taken name is refused, so a plug-in cannot silently replace a built-in),
and the built-ins are loaded by importing one package (``loads``) the first time the registry is
read, so ``registry.names()`` is complete whoever asks first.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Named entries of one kind (``what``: "loss term", "generator", ...).

    Args:
        what: the kind, for messages (``unknown loss term 'l3'; registered: [...]``).
        loads: the package whose import registers the built-in entries.
    """

    def __init__(self, what: str, loads: str):
        self.what, self._loads, self._entries = what, loads, {}
        self._loaded = False

    def register(self, name: str, *aliases: str) -> Callable[[T], T]:
        """Decorator: registers the entry under ``name`` and ``aliases``."""

        def decorate(entry: T) -> T:
            for key in (name, *aliases):
                if key in self._entries and self._entries[key] is not entry:
                    raise ValueError(f"{self.what} {key!r} is already registered by "
                                     f"{getattr(self._entries[key], '__qualname__', self._entries[key])}")
                self._entries[key] = entry
            return entry

        return decorate

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            importlib.import_module(self._loads)

    def get(self, name: str) -> T:
        """The entry registered as ``name``; ValueError naming the registered ones otherwise."""
        self._load()
        if name not in self._entries:
            raise ValueError(f"unknown {self.what} {name!r}; registered: {sorted(self._entries)}")
        return self._entries[name]

    def names(self) -> tuple[str, ...]:
        self._load()
        return tuple(sorted(self._entries))

    def items(self) -> Iterator[tuple[str, T]]:
        self._load()
        return iter(sorted(self._entries.items()))

    def __contains__(self, name: Any) -> bool:
        self._load()
        return name in self._entries
