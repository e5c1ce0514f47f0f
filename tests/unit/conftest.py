import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny convolutions are fastest single-threaded (and 2-core CI runners thrash otherwise)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
