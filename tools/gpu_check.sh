#!/usr/bin/env bash
# The GPU speed checks in one run of a few minutes on one GPU (no install: the package goes on PYTHONPATH):
# training-step images/s in bf16 (with a profile and the FIR form 'auto' chose) and float32 beside the official step,
# with the depth-wise FIR form and compiled; a 60-second `semstylegan train`; G inference at batch 64 (float32, bf16,
# compiled); the explorer update at 512 px. JSON and logs go to gpu-check/ (and, where $OUT is set, as summary.json
# and gpu-check.tgz to $OUT).
# Each part has its own time limit, so one slow part cannot take the others with it, and all of them together stay
# within $GPU_CHECK_BUDGET seconds (default 540: a device command may run 10 minutes); the parts run most important
# first, and a part that no longer fits is skipped (its JSON then says so).
# Usage, from the repository root:  bash tools/gpu_check.sh
# A dry run of the plumbing on a CPU (3 minutes):
#   GPU_CHECK_DEVICE=cpu GPU_CHECK_PRESET=tiny GPU_CHECK_EXPLORE=tiny bash tools/gpu_check.sh
set -uo pipefail
out=gpu-check; rm -rf "$out"; mkdir -p "$out"
dev=${GPU_CHECK_DEVICE:-cuda} preset=${GPU_CHECK_PRESET:-celebamask-256}
explore=${GPU_CHECK_EXPLORE:-celebamask-512}
bench="python3 -m semstylegan.cli bench --device $dev"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
budget=${GPU_CHECK_BUDGET:-540}
part() { local name=$1 limit=$2; shift 2; local left=$((budget - SECONDS - 15))
         if [ "$left" -lt 30 ]; then
           echo "== $name: skipped, ${left} s left"; echo '{"error": "skipped: out of time"}' > "$out/$name.json"; return
         fi
         [ "$limit" -gt "$left" ] && limit=$left
         echo "== $name (limit $limit s)"; local t=$SECONDS
         timeout "$limit" "$@" > "$out/$name.json" 2> "$out/$name.log"; echo "   rc $? in $((SECONDS - t)) s"; }
(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true) 2>&1 | tee "$out/gpu.txt"
python3 -c 'import torch; print("torch", torch.__version__, torch.version.cuda)' | tee -a "$out/gpu.txt"
# 1. the training step at celebamask-256, batch 32, ours bf16, with a profile and what FIR 'auto' chose
part train_bf16 150 $bench --what train --preset "$preset" --amp bf16 --repeat 5 --profile 12 --no-reference \
  --roofline h200
# 2. the whole `semstylegan train` for 60 s on synthetic faces: images/s as logged against the benchmark's
part train_cli 150 python3 -m semstylegan.cli train --preset "$preset" --minutes 1 --out "$out/run" --device "$dev" \
  --set log_every=10 --set sample_every=100000 --set ckpt_every=100000 -q
cp "$out/run/metrics.jsonl" "$out/train_cli_metrics.jsonl" 2>/dev/null
# 3. inference: G forward at batch 64, float32 and bf16, also compiled, and the G+D step
part model_b64 180 $bench --what model --preset "$preset" --batch 64 --repeat 5 --profile 8 --compile
# 4. ours float32 beside the official float32 in one run
part train_fp32 150 $bench --what train --preset "$preset" --amp off --repeat 3
# 5. side by side with step 1: every FIR filter as the depth-wise conv (the form before 'auto'); the main phases compiled
part train_bf16_conv 90 $bench --what train --preset "$preset" --amp bf16 --repeat 3 --no-reference --fir conv
part train_bf16_compiled 180 $bench --what train --preset "$preset" --amp bf16 --repeat 3 --no-reference --compile
# 6. the explorer update at 512 px (random weights of the paper's 512 model)
part explore_512 60 $bench --what explore --preset "$explore" --repeat 10
python3 - "$out" <<'PY'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
def load(n):
    try: return json.loads((out / f'{n}.json').read_text())
    except Exception as e: return {'error': repr(e)}
b, f, m = load('train_bf16'), load('train_fp32'), load('model_b64')
c, k = load('train_bf16_conv'), load('train_bf16_compiled')
o = f.get('official', {})
metrics = out / 'train_cli_metrics.jsonl'
recs = [json.loads(l) for l in metrics.read_text().splitlines()] if metrics.exists() else []
ours = b.get('ours', {})
s = dict(bf16_img_s=ours.get('images_per_s'), fp32_img_s=f.get('ours', {}).get('images_per_s'),
         bf16_img_s_fir_conv=c.get('ours', {}).get('images_per_s'), fir_auto=b.get('fir'),
         bf16_img_s_compiled=k.get('ours', {}).get('images_per_s'),
         phases_bf16_compiled={n: k.get('ours', {}).get(n) for n in ('d_main_s', 'd_reg_s', 'g_main_s', 'g_reg_s')},
         official_img_s=o.get('images_per_s'),
         phases_bf16={k: ours.get(k) for k in ('d_main_s', 'd_reg_s', 'g_main_s', 'g_reg_s')},
         phases_official={k: o.get(k) for k in ('d_main_s', 'd_reg_s', 'g_main_s', 'g_reg_s')},
         roofline_img_s_h200=ours.get('roofline_images_per_s'),
         efficiency_vs_roofline={k: r['bound_ms'] / 1e3 / ours[f'{k}_s']
                                 for k, r in ours.get('roofline', {}).items() if ours.get(f'{k}_s')},
         peak_memory_gb_bf16=ours.get('peak_memory_gb'), inference_img_s=m.get('g_images_per_s'),
         inference_img_s_bf16=m.get('g_images_per_s_bf16'),
         inference_img_s_compiled=m.get('g_images_per_s_compiled'),
         inference_img_s_compiled_bf16=m.get('g_images_per_s_compiled_bf16'),
         explore_512=load('explore_512'),
         train_cli_img_s=[r.get('img_per_s') for r in recs], train_cli_steps=recs[-1]['step'] if recs else None)
(out / 'summary.json').write_text(json.dumps(s, indent=1)); print(json.dumps(s, indent=1))
PY
if [ -n "${OUT:-}" ]; then
  cp "$out/summary.json" "$OUT/"; tar czf "$OUT/gpu-check.tgz" --exclude=run "$out"
fi
