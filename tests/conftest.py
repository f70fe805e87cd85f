import sys
from pathlib import Path

import pytest
import torch

# tests/ holds the literal reference modules shared with benchmarks/
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def one_thread():
    """Two shared cores and small tensors: one intra-op thread avoids oversubscription stalls."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
