"""The built-in plugins pass the contract suites that third-party plugins use."""

from __future__ import annotations

import pytest

from nbsim.plugins.builtins.lattice import GaussLattice, RoundLattice, SquareLattice, TophatLattice
from nbsim.plugins.builtins.polarization import KahnPolarization, NoPolarization
from nbsim.plugins.builtins.trace import BuiltinTracePlugin
from nbsim.testing import BaseLatticeFactorTests, BasePolarizationModelTests, BaseTracerTests


class TestSquareLattice(BaseLatticeFactorTests):
    @pytest.fixture
    def implementation(self):
        return SquareLattice()


class TestRoundLattice(BaseLatticeFactorTests):
    @pytest.fixture
    def implementation(self):
        return RoundLattice()


class TestGaussLattice(BaseLatticeFactorTests):
    @pytest.fixture
    def implementation(self):
        return GaussLattice()


class TestTophatLattice(BaseLatticeFactorTests):
    @pytest.fixture
    def implementation(self):
        return TophatLattice()


class TestKahnPolarization(BasePolarizationModelTests):
    @pytest.fixture
    def implementation(self):
        return KahnPolarization()


class TestNoPolarization(BasePolarizationModelTests):
    @pytest.fixture
    def implementation(self):
        return NoPolarization()


class TestBuiltinTracer(BaseTracerTests):
    @pytest.fixture
    def implementation(self):
        return BuiltinTracePlugin()
