#!/usr/bin/env bash
# Every GPU figure issue 14 asks for, in one run of a few minutes on one GPU (no install: the package goes on
# PYTHONPATH). JSON and logs go to gpu-check/ (and, where $OUT is set, as summary.json and gpu-check.tgz to $OUT).
# Each part has its own time limit, so one slow part cannot take the others with it.
# Usage, from the repository root:  bash tools/gpu_check.sh
set -uo pipefail
out=gpu-check; mkdir -p "$out"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
ssg() { python3 -m semstylegan.cli "$@"; }
part() { local name=$1 limit=$2; shift 2; echo "== $name"; local t=$SECONDS
         timeout "$limit" "$@" > "$out/$name.json" 2> "$out/$name.log"; echo "   rc $? in $((SECONDS - t)) s"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
python3 -c 'import torch; print("torch", torch.__version__, torch.version.cuda)' | tee -a "$out/gpu.txt"
# 1. the training step at celebamask-256, batch 32: ours bf16 with a profile, then float32, then the official float32
part train_bf16 150 ssg bench --what train --device cuda --amp bf16 --repeat 5 --profile 12 --no-reference
part train_fp32 100 ssg bench --what train --device cuda --amp off --repeat 3 --no-reference
part train_official 150 python3 -c 'import json; from semstylegan.train import train_speed
print(json.dumps(train_speed("celebamask-256", device="cuda", repeat=3, official=True, amp="off"), indent=1))'
# 2. inference: G forward at batch 64, float32 and bf16, and the G+D step, with the official algorithm's forward
part model_b64 90 ssg bench --what model --device cuda --batch 64 --repeat 5 --profile 8
# 3. the explorer update at 512 px (random weights of the paper's 512 model)
part explore_512 60 ssg bench --what explore --preset celebamask-512 --device cuda --repeat 10
# 4. the whole `semstylegan train` for 60 s on synthetic faces: images/s as logged against the benchmark's
echo "== train_cli"; t=$SECONDS
timeout 150 python3 -m semstylegan.cli train --preset celebamask-256 --minutes 1 --out "$out/run" --device cuda \
  --set log_every=10 --set sample_every=100000 --set ckpt_every=100000 -q > "$out/train_cli.log" 2>&1
echo "   rc $? in $((SECONDS - t)) s"; cp "$out/run/metrics.jsonl" "$out/train_cli_metrics.jsonl" 2>/dev/null
python3 - "$out" <<'PY'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
def load(n):
    try: return json.loads((out / f'{n}.json').read_text())
    except Exception as e: return {'error': repr(e)}
b, f, o, m = load('train_bf16'), load('train_fp32'), load('train_official'), load('model_b64')
recs = [json.loads(l) for l in (out / 'train_cli_metrics.jsonl').read_text().splitlines()] if (out / 'train_cli_metrics.jsonl').exists() else []
ours = b.get('ours', {})
s = dict(bf16_img_s=ours.get('images_per_s'), fp32_img_s=f.get('ours', {}).get('images_per_s'), official_img_s=o.get('images_per_s'),
         phases_bf16={k: ours.get(k) for k in ('d_main_s', 'd_reg_s', 'g_main_s', 'g_reg_s')},
         phases_official={k: o.get(k) for k in ('d_main_s', 'd_reg_s', 'g_main_s', 'g_reg_s')},
         peak_memory_gb_bf16=ours.get('peak_memory_gb'), inference_img_s=m.get('g_images_per_s'),
         inference_img_s_bf16=m.get('g_images_per_s_bf16'),
         train_cli_img_s=[r.get('img_per_s') for r in recs], train_cli_steps=recs[-1]['step'] if recs else None)
(out / 'summary.json').write_text(json.dumps(s, indent=1)); print(json.dumps(s, indent=1))
PY
if [ -n "${OUT:-}" ]; then
  cp "$out/summary.json" "$OUT/"; tar czf "$OUT/gpu-check.tgz" --exclude=run "$out"
fi
