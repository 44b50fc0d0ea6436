"""Immutable value classes that are cheap to build: the live path builds hundreds a second.

`@immutable` declares a dataclass with slots that the type checker treats as frozen (mypy strict
rejects any assignment to a field) and that compares and hashes by its fields, as
`dataclass(frozen=True, slots=True)` does. At run time it is not frozen: on Python 3.11 a frozen
dataclass sets each field through `object.__setattr__`, which makes building one five times
slower (2.2 µs against 0.4 µs for eleven fields), and a live recompute of one account builds
about a hundred of them (each position re-marked, its risk, its sigmas, its stop) every second.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar, dataclass_transform

T = TypeVar("T")


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def immutable(cls: type[T]) -> type[T]:
    """A dataclass with slots, frozen for the type checker, equal and hashed by its fields."""
    return dataclass(slots=True, unsafe_hash=True)(cls)
