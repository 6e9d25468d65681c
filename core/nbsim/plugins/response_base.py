"""A base for detector responses whose options are typed attributes (public: plugins use it).

A subclass is an attrs class whose fields are its ``--response NAME:key=value`` options, each
with a type (``float``, ``int``, ``str``, optionally ``| None``) and a default; ``required``
names those that must be given. The class sets ``name``, ``differentiable``, ``random`` and
``conserves_total``
(:class:`nbsim.protocols.DetectorResponse`) and writes ``apply``::

    @attrs.frozen
    class Gain(Response):
        name: ClassVar[str] = "gain"
        adu_per_photon: float = 1.0

        def apply(self, image, context):
            return image * self.adu_per_photon
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import attrs

from nbsim.protocols import DetectorResponse

_TYPES = {"float": float, "int": int, "str": str}


def _kind(annotation) -> type:
    """The type a field's text is read as: ``float | None`` is read as a float."""
    if isinstance(annotation, type):
        return annotation
    return _TYPES.get(str(annotation).replace("| None", "").strip(), float)


@attrs.frozen
class Response(DetectorResponse):
    name: ClassVar[str] = ""
    differentiable: ClassVar[bool] = True
    random: ClassVar[bool] = False
    conserves_total: ClassVar[bool] = False
    required: ClassVar[tuple[str, ...]] = ()

    def configure(self, options: Mapping[str, str]) -> Response:
        fields = {f.name: f for f in attrs.fields(type(self))}
        known = ", ".join(fields) or "none"
        values: dict[str, Any] = {}
        for key, text in options.items():
            if key not in fields:
                raise ValueError(f"unknown option {key!r} (options of {self.name}: {known})")
            kind = _kind(fields[key].type)
            try:
                values[key] = kind(text)
            except ValueError:
                raise ValueError(f"{key}={text!r} is not a {kind.__name__}") from None
        configured = attrs.evolve(self, **values)
        missing = [k for k in self.required if getattr(configured, k) is None]
        if missing:
            raise ValueError(f"{self.name} needs {', '.join(f'{k}=...' for k in missing)}")
        configured.check()
        return configured

    def check(self) -> None:
        """Raise ValueError for option values out of range (the default accepts all)."""
