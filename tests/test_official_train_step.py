"""Our training step is the official one: one iteration of the official train() (float64, every draw fixed and stored
in ../shared/fixtures/official_train_step_tiny64.pt) run through our trainer, compared phase by phase."""
import pytest
import torch
from semstylegan.checkpoint import safe_load
from semstylegan.train import Trainer
from semstylegan.config import TrainConfig
from semstylegan.official import official_step_check, official_draws
from conftest import SHARED

TOL = 1e-4

@pytest.fixture(scope='module')
def fx():
    p = SHARED / 'fixtures' / 'official_train_step_tiny64.pt'
    if not p.exists(): pytest.skip(f'official training-step fixture not found at {p} (set SEMSTYLEGAN_SHARED)')
    return safe_load(p)

@pytest.fixture(scope='module')
def rows(fx, tmp_path_factory):
    torch.set_num_threads(2)
    return official_step_check(fx, tmp_path_factory.mktemp('official'))

def test_defaults_are_the_official_recipe(fx):
    tc, official = TrainConfig(), fx['config']['train']
    for k in ('r1_img', 'r1_seg', 'path_regularize', 'path_batch_shrink', 'd_reg_every', 'g_reg_every', 'lr', 'mixing',
              'lambda_mask', 'ema_decay', 'path_decay'):
        assert getattr(tc, k) == pytest.approx(official[k], rel=1e-12), k

def test_optimisers_are_the_official_ones(fx, tmp_path):
    from semstylegan.official import official_trainer
    tr = official_trainer(fx, tmp_path)
    for opt, name in ((tr.opt_g, 'g'), (tr.opt_d, 'd')):
        group, official = opt.param_groups[0], fx['config']['optim'][name]
        assert group['lr'] == pytest.approx(official['lr']) and group['eps'] == official['eps']
        assert list(group['betas']) == pytest.approx(official['betas']) and group['weight_decay'] == 0

@pytest.mark.slow                                                   # `rows`: one official iteration, float64 (~100 s)
@pytest.mark.parametrize('phase', ['d_main', 'r1', 'g_main', 'path_length'])
def test_phase_gradients(rows, phase):
    r = rows[phase]
    assert r['worst'] < TOL, (phase, r['worst'], r['tensor'])
    assert r['none_here'] == [] and r['none_there'] == [], r       # None exactly where the official has None
    assert r['zero'] == 0                                           # and zero where the official adds 0 * output

@pytest.mark.slow
@pytest.mark.parametrize('row', ['final G', 'final G_ema', 'final D', 'Adam G', 'Adam D', 'pl_mean'])
def test_after_the_iteration(rows, row):
    assert rows[row]['worst'] < TOL, (row, rows[row])
    assert rows[row].get('bad_steps', []) == []                     # Adam counted the official number of steps

@pytest.mark.slow
def test_the_check_sees_a_departure(fx, tmp_path):
    "The earlier R1 (the mask penalty never reaches the image branch) fails the check: the comparison can fail."
    rows = official_step_check(fx, tmp_path, r1_mode='separate')
    assert rows['d_main']['worst'] < TOL and rows['r1']['worst'] > 0.5, rows['r1']

def test_draws_of_the_wrong_size_are_refused(fx):
    with pytest.raises(ValueError, match='the fixture holds draws for 4 samples, the step asks 8'):
        official_draws(fx)('d_main', 8)
