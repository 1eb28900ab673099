"""One strict way from a plain mapping (YAML, JSON, a checkpoint's metadata) to a settings dataclass.

Used for ModelConfig, TrainConfig and the CLIP pretraining options: unknown keys are an error naming the
known ones, nested dataclasses are built recursively, lists become tuples where the field holds a tuple.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def from_dict(cls: type[T], data: Mapping[str, Any], path: str = "config") -> T:
    """A `cls` instance from `data` (possibly partial: missing fields keep their defaults).

    Raises ValueError naming the dotted path of a non-mapping value or of unknown keys."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: expected a mapping, got {type(data).__name__}")
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - fields)
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {unknown}; known: {sorted(fields)}")
    defaults = cls()
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        default = getattr(defaults, name)
        if dataclasses.is_dataclass(default):
            kwargs[name] = from_dict(type(default), value, f"{path}.{name}")
        elif isinstance(default, tuple) and value is not None:
            kwargs[name] = tuple(value)
        elif isinstance(default, float) and isinstance(value, (str, int)) and not isinstance(value, bool):
            # YAML 1.1 reads 1e-6 (no dot) as a string; an int where a float is expected is fine.
            try:
                kwargs[name] = float(value)
            except ValueError:
                raise ValueError(f"{path}.{name}: expected a number, got {value!r}") from None
        else:
            kwargs[name] = value
    return cls(**kwargs)
