"""Output names for everything the extraction emits, free of collisions.

Code from several modules lands in one notebook namespace beside the driver's
own names, so every emitted name is checked against the others, the driver's,
builtins the code relies on, and every identifier already in the inlined code.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


class NameAllocator:
    def __init__(self, taken: set[str], reserved: Mapping[str, tuple | None], builtins: set[str]) -> None:
        self.taken = taken
        self.reserved = reserved
        self.builtins = builtins
        self._names: dict[tuple, str] = {}
        self._used: dict[str, tuple] = {}

    def name_of(self, key: tuple) -> str:
        return self._names[key]

    def fix(self, key: tuple, name: str) -> str:
        self._assign(key, name)
        return name

    def keep(self, key: tuple, preferred: str, module: str | None) -> str:
        """A name from the source: kept unless another emitted name or the driver has it."""
        if key in self._names:
            return self._names[key]
        if self._free_for_existing(key, preferred):
            return self._assign(key, preferred)
        suffix = (module or key[1]).rpartition(".")[2]
        return self.new(key, [f"{preferred}_{suffix}"])

    def new(self, key: tuple, candidates: Iterable[str]) -> str:
        """A name introduced by the builder: must not appear anywhere in the inlined code."""
        if key in self._names:
            return self._names[key]
        candidates = list(candidates)
        for candidate in candidates:
            if self._free_for_new(candidate):
                return self._assign(key, candidate)
        base = candidates[-1]
        number = 2
        while not self._free_for_new(f"{base}_{number}"):
            number += 1
        return self._assign(key, f"{base}_{number}")

    def _free_for_existing(self, key: tuple, name: str) -> bool:
        if name in self._used:
            return False
        if name in self.reserved and self.reserved[name] != key:
            return False
        return not (name in self.builtins and key[0] == "def")

    def _free_for_new(self, name: str) -> bool:
        return (
            name.isidentifier()
            and name not in self._used
            and name not in self.reserved
            and name not in self.taken
            and name not in self.builtins
        )

    def _assign(self, key: tuple, name: str) -> str:
        self._names[key] = name
        self._used[name] = key
        return name
