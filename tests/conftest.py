import os
from pathlib import Path
import pytest
import torch

torch.set_num_threads(2)
ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get('SEMSTYLEGAN_SHARED', ROOT.parent / 'shared'))

@pytest.fixture(scope='session')
def fixture_path():
    p = SHARED / 'fixtures' / 'official_tiny64.pt'
    if not p.exists(): pytest.skip(f'reference fixture not found at {p} (set SEMSTYLEGAN_SHARED to the shared folder)')
    return p
