"""One Bench per fault-matrix module (its servers shared by the module's cases; xdist spreads
the modules)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.faults.matrix import Bench


@pytest.fixture(scope="module")
def bench(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    b = Bench(tmp_path_factory.mktemp(f"faults-{request.module.__name__.rsplit('.', 1)[-1]}"))
    yield b
    b.close()
