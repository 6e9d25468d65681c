"""Named registries of plugin objects (phi policies, lattice factors, polarization models).

``register`` refuses a name that is already taken (pluggy would silently keep one of two
entry points with the same name; nbsim never relies on that); ``get`` names what is
installed and suggests the closest spelling when a name is unknown.
"""

from __future__ import annotations

import difflib
from typing import Generic, TypeVar

from nbsim.errors import PluginError
from nbsim.protocols import missing_members

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, protocol: type | None = None):
        self.kind = kind
        #: the contract every registered object must meet (nbsim.protocols), if any
        self.protocol = protocol
        self._items: dict[str, T] = {}
        self._owners: dict[str, str] = {}

    def register(self, obj: T, *, owner: str = "") -> None:
        name = getattr(obj, "name", None)
        if not isinstance(name, str) or not name:
            raise PluginError(f"{owner or 'a plugin'} registered a {self.kind} without a name: {obj!r}")
        protocol = self.protocol
        problems = missing_members(obj, protocol) if protocol is not None else []
        if problems:
            raise PluginError(f"{owner or 'a plugin'} registered {self.kind} {name!r}, which breaks the contract of "
                              f"nbsim.protocols.{protocol.__name__}: {'; '.join(problems)} (a subclass of the "
                              "protocol inherits its defaults)")
        if name in self._items:
            raise PluginError(
                f"{self.kind} {name!r} is registered twice (by {self._owners[name] or 'a plugin'} "
                f"and {owner or 'a plugin'})"
            )
        self._items[name] = obj
        self._owners[name] = owner

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            available = ", ".join(sorted(self._items)) or "none"
            close = difflib.get_close_matches(name, self._items, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise PluginError(f"unknown {self.kind} {name!r} (installed: {available}){hint}") from None

    def owner(self, name: str) -> str:
        return self._owners.get(name, "")

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def __len__(self) -> int:
        return len(self._items)
