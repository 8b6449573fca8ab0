"""The encoder into W+: kill and resume of `train-encoder`, exact resume, `invert --encoder`, clear errors."""
import json, signal, time
import pytest
import torch
import torch.nn.functional as F

from semstylegan.checkpoint import load_generator, pretrained_path
from semstylegan.encoder import EncoderRun, load_encoder, encode, mean_start, ENCODER_FORMAT
from semstylegan.synthetic import synthetic_faces
from semstylegan.viz import from_uint8
from _helpers import popen_cli

@pytest.fixture(scope='module')
def G(): return load_generator(pretrained_path()).eval()

def test_resume_is_exact(tmp_path, G):
    "Two steps, stop, two more with resume == four steps at once (each batch is drawn from the seed and the step)."
    quiet = dict(progress=False, log=lambda *a: None, batch=2, ckpt_every=2, log_every=1)
    EncoderRun(G, tmp_path / 'a', **quiet).fit(4)
    EncoderRun(G, tmp_path / 'b', **quiet).fit(2)
    EncoderRun(G, tmp_path / 'b', resume=True, progress=False, log=lambda *a: None, log_every=1).fit(4)
    a, b = load_encoder(tmp_path / 'a', G), load_encoder(tmp_path / 'b' / 'encoder.safetensors', G)
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    assert b.info['steps'] == 4 and b.info['batch'] == 2
    steps = [json.loads(l)['step'] for l in (tmp_path / 'b' / 'metrics.jsonl').read_text().splitlines()]
    assert steps == [1, 2, 3, 4]

def test_kill_and_resume(tmp_path, run_cli):
    """kill -9 in the middle of `train-encoder`; --resume continues from the last whole checkpoint and finishes."""
    out = tmp_path / 'enc'
    p = popen_cli('train-encoder', '--out', out, '--steps', 1000, '--batch', 2, '--ckpt-every', 2, '-q',
                  env={'OMP_NUM_THREADS': '1'})
    deadline = time.time() + 240
    while time.time() < deadline and len(list((out / 'checkpoints').glob('*.pt'))) < 2: time.sleep(0.2)
    p.send_signal(signal.SIGKILL); p.wait()
    ckpts = sorted((out / 'checkpoints').glob('[0-9]*.pt'))
    assert ckpts, p.stderr.read().decode()
    step = torch.load(ckpts[-1], weights_only=False)['step']
    assert step >= 2 and not (out / 'encoder.safetensors').exists()
    r = run_cli('train-encoder', '--out', out, '--resume', '--steps', step + 2, '-q', timeout=300)
    assert r.returncode == 0, r.stderr
    assert load_encoder(out).info['steps'] == step + 2
    steps = [json.loads(l)['step'] for l in (out / 'metrics.jsonl').read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == step + 2, steps
    assert (out / 'samples' / f'{step + 2:06d}.png').exists()

def test_train_encoder_errors(tmp_path, run_cli):
    r = run_cli('train-encoder', '--out', tmp_path / 'x', '--resume')
    assert r.returncode == 1 and 'no encoder run to resume here' in r.stderr and 'Traceback' not in r.stderr
    r = run_cli('train-encoder', '--out', tmp_path / 'x', '--real', tmp_path / 'none', '--steps', 1)
    assert r.returncode == 2 and str(tmp_path / 'none') in r.stderr and 'no such folder' in r.stderr

def _photos(folder, n=2):
    from PIL import Image
    folder.mkdir()
    img = synthetic_faces(n, 64, seed=0, start=20_000)[0]
    for i, im in enumerate(img): Image.fromarray(im.permute(1, 2, 0).numpy()).save(folder / f'{i}.png')
    return folder

def test_invert_with_encoder(tmp_path, capsys, G):
    "`invert --encoder` alone and as the start of the optimisation; a missing encoder is a clear error."
    from semstylegan.cli import main
    photos = _photos(tmp_path / 'photos')
    EncoderRun(G, tmp_path / 'enc', batch=2, progress=False, log=lambda *a: None).fit(2)
    assert main(['invert', str(photos), '--encoder', str(tmp_path / 'enc'), '--out', str(tmp_path / 'a'), '-q']) == 0
    assert main(['invert', str(photos), '--encoder', str(tmp_path / 'enc'), '--steps', '2', '--out', str(tmp_path / 'b'),
                 '-v']) == 0
    assert '(encoder + 2 steps)' in capsys.readouterr().out
    a = torch.load(tmp_path / 'a' / 'codes.pt', weights_only=True)['wplus']
    b = torch.load(tmp_path / 'b' / 'codes.pt', weights_only=True)['wplus']
    assert a.shape == b.shape == (2, G.layout.n_latent, G.cfg.style_dim) and not torch.equal(a, b)
    with pytest.raises(SystemExit) as e:                                  # a usage error, before any work
        main(['invert', str(photos), '--encoder', str(tmp_path / 'nothing.safetensors'), '--out', str(tmp_path)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and f"argument --encoder: no such file or folder: {tmp_path / 'nothing.safetensors'}" in err
    with pytest.raises(Exception, match='nothing.safetensors: no such file \\(expected an encoder\\).*train-encoder'):
        load_encoder(tmp_path / 'nothing.safetensors')

def test_shipped_encoder_beats_the_mean_code(G):
    "The shipped encoder, on held-out synthetic faces: far closer than the mean code, and its masks agree."
    E = load_encoder(pretrained_path('tiny-synthetic-encoder'), G)
    img, lab, _ = synthetic_faces(64, 64, seed=0, start=20_000)
    x = from_uint8(img)
    with torch.no_grad():
        o = encode(E, G, x)
        mean_image = mean_start(E, G, len(x))[1]
    mse, mse_mean = F.mse_loss(o.image, x).item(), F.mse_loss(mean_image, x).item()
    assert mse < mse_mean / 3, (mse, mse_mean)
    assert (o.mask == lab).float().mean() > 0.75

def test_inversion_editor_starts_from_the_encoder(G):
    "The explorer's inversion editor with the shipped encoder: 0 steps gives the encoder's codes, closer than the mean."
    pytest.importorskip('ipywidgets')
    from semstylegan.explore import InversionEditor
    ed = InversionEditor(G, encoder=pretrained_path('tiny-synthetic-encoder'), steps=0)
    ed.run_inversion(steps=0)
    assert ed.losses == []
    with torch.no_grad():
        want = encode(ed.encoder, G, ed.target).wplus
        mse = F.mse_loss(G.synthesis(ed.base, noise_mode='const').image, ed.target).item()
        mse_mean = F.mse_loss(mean_start(ed.encoder, G, 1)[1], ed.target).item()
    assert torch.equal(ed.base.codes, want) and mse < mse_mean / 2, (mse, mse_mean)
