"""Contract test suites for plugin authors.

A plugin package's test file subclasses the base class of its kind and provides one fixture::

    import pytest
    from nbsim.testing import BaseLatticeFactorTests
    from my_plugin import MyLattice

    class TestMyLattice(BaseLatticeFactorTests):
        @pytest.fixture
        def implementation(self):
            return MyLattice()

Capabilities declared on the implementation change which assertion runs (never silently
skip); ``known_failures = {"test_name": "reason"}`` on the test class turns those tests into
strict expected failures.  The suites check output shapes and broadcasting, float32 and
float64, CUDA when available (skipped otherwise), gradcheck in float64, chunk invariance, no
mutation of inputs and determinism.  See ``docs/plugins.md``.
"""

from nbsim.testing.base import ContractSuite
from nbsim.testing.image import BaseImageTransformTests
from nbsim.testing.lattice import BaseLatticeFactorTests
from nbsim.testing.phi import BasePhiPolicyTests
from nbsim.testing.polarization import BasePolarizationModelTests
from nbsim.testing.response import BaseDetectorResponseTests
from nbsim.testing.tracer import BaseTracerTests

__all__ = [
    "BaseDetectorResponseTests", "BaseImageTransformTests", "BaseLatticeFactorTests", "BasePhiPolicyTests",
    "BasePolarizationModelTests", "BaseTracerTests",
    "ContractSuite",
]
