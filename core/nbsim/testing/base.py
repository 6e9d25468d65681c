"""What every contract suite shares: the required fixture, devices, dtypes, known failures."""

from __future__ import annotations

import pytest
import torch

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                                 reason="CUDA is not available"))]
DTYPES = [torch.float32, torch.float64]


class ContractSuite:
    """Base of the contract suites.

    Subclasses provide the ``implementation`` fixture; ``known_failures`` maps test names to
    the reason they are expected to fail (strict: a pass is reported as an error).
    """

    known_failures: dict[str, str] = {}

    @pytest.fixture
    def implementation(self):
        raise NotImplementedError(
            f"{type(self).__name__} needs an `implementation` fixture returning the object under test, e.g.\n"
            "    @pytest.fixture\n    def implementation(self):\n        return MyPlugin()"
        )

    @pytest.fixture(autouse=True)
    def _known_failures(self, request):
        reason = self.known_failures.get(request.node.originalname)
        if reason:
            request.applymarker(pytest.mark.xfail(reason=reason, strict=True))


def snapshot(*tensors):
    return [t.clone() for t in tensors]


def unchanged(before, after) -> bool:
    return all(torch.equal(a, b) for a, b in zip(before, after))
