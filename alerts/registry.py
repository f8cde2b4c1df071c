"""Plugins by name: a detector or notifier class registers itself when it is defined.

A plugin is one class in one module: giving the class its registry name (``name`` for a
detector, ``type`` for a notifier) registers it the moment the module is imported, so
adding one touches no other file. A name is taken once — a second class under it is
refused with both classes named (as ``prometheus_client`` refuses a duplicate metric), so
two plugins never silently shadow each other — and a class that leaves a required hook
unimplemented is refused at its definition, not at the first window it would have judged.

>>> from abc import ABC, abstractmethod
>>> class Base(ABC):
...     @abstractmethod
...     def send(self) -> None: ...
>>> plugins = Registry("widget")
>>> class Good(Base):
...     def send(self) -> None: ...
>>> class Lazy(Base): ...
>>> plugins.add("good", Good)
>>> sorted(plugins), plugins.lookup("good") is Good
(['good'], True)
>>> plugins.add("good", Lazy)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
alerts.registry.DuplicateNameError: widget 'good' is already registered by ...Good; ...Lazy needs...
>>> plugins.add("lazy", Lazy)
Traceback (most recent call last):
...
TypeError: widget 'lazy' (alerts.registry.Lazy) must implement: send
>>> plugins.lookup("nope")
Traceback (most recent call last):
...
ValueError: unknown widget 'nope'; known: good
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Generic, TypeVar

from pydantic import ValidationError

T = TypeVar("T", bound=type)


class DuplicateNameError(ValueError):
    """A second plugin class claimed a name another class already holds."""


def qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def unimplemented(cls: type) -> list[str]:
    """The abstract hooks ``cls`` still lacks (``__abstractmethods__`` is set only after
    ``__init_subclass__`` runs, so it is recomputed here)."""
    hooks = {h for base in cls.__mro__ for h in getattr(base, "__abstractmethods__", ())}
    return sorted(h for h in hooks if getattr(getattr(cls, h, None), "__isabstractmethod__", 0))


def problems(exc: ValidationError) -> str:
    """A plugin schema's errors on one line, each with the key it is about."""
    return "; ".join(
        f"{'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}" for e in exc.errors()
    )


class Registry(Mapping[str, T], Generic[T]):
    """Plugin classes by name; read it like a dict, grow it only through :meth:`add`."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._classes: dict[str, T] = {}

    def add(self, name: str, cls: T) -> None:
        held = self._classes.get(name)
        if held is not None:
            raise DuplicateNameError(
                f"{self.kind} {name!r} is already registered by {qualified(held)}; "
                f"{qualified(cls)} needs another name"
            )
        missing = unimplemented(cls)
        if missing:
            raise TypeError(
                f"{self.kind} {name!r} ({qualified(cls)}) must implement: {', '.join(missing)}"
            )
        self._classes[name] = cls

    def lookup(self, name: str) -> T:
        """The class registered as ``name``; an unknown name is an error naming the known."""
        if name not in self._classes:
            raise ValueError(f"unknown {self.kind} {name!r}; known: {', '.join(sorted(self))}")
        return self._classes[name]

    def __getitem__(self, name: str) -> T:
        return self._classes[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._classes)

    def __len__(self) -> int:
        return len(self._classes)


def import_plugins(modules: list[str]) -> list[str]:
    """Import the user's plugin modules (config ``alerts.plugins``), which registers them."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ValueError(f"plugin module {module!r} cannot be imported: {exc}") from exc
    return modules
