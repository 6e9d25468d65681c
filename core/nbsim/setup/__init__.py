"""The nanoBragg command line: its flags, its scan state and its set-up rules.

``parse_argv`` turns a nanoBragg argument list into a :class:`ScanState` (the reference
program's variables right after its argument scan); ``resolve`` applies the program's
set-up rules (sizes, beam centres, conventions, sampling) and returns the frozen
:class:`nbsim.model.config.RunConfig`.  See ``specs/cli.md``.
"""

from nbsim.setup.parser import parse_argv
from nbsim.setup.resolve import StructureInputs, config_from_argv, resolve
from nbsim.setup.spectrum import SpectrumInputs
from nbsim.setup.state import ScanState

__all__ = ["parse_argv", "resolve", "config_from_argv", "ScanState", "StructureInputs", "SpectrumInputs"]
