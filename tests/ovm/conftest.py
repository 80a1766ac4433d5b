import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from ovm_helpers import small_pool  # noqa: E402


@pytest.fixture
def pool3():
    return small_pool()
