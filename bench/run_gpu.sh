#!/usr/bin/env bash
# Everything measured on a CUDA card in one go (a lent GPU is short-lived): generator speed/memory,
# trainer throughput, and the sample models' training.  Usage, from the repo root, with the datasets of
# `python scripts/footage_models.py prepare` in .cache/datasets (or as .carry/*.tgz archives of them):
#     OUT=bench/results/<card> bash bench/run_gpu.sh
set -u
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
OUT=${OUT:-bench/results/gpu}
PY=${PY:-python3}
mkdir -p "$OUT" .cache/datasets
for f in .carry/*.tgz; do [ -f "$f" ] && tar xzf "$f" -C .cache/datasets; done
{
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
$PY -c "import torch, accelerate, cv2; print('torch', torch.__version__, 'accelerate', accelerate.__version__, 'cv2', cv2.__version__)"
CARD=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
echo "== generator speed and memory"
timeout 200 $PY bench/gpu_bench.py --out "$OUT/gpu_bench.jsonl"
if [ -f .cache/original-vid2vid/models/networks.py ]; then   # its models/ folder is all it reads (carry that)
    echo "== side by side with the original generator"
    timeout 150 $PY bench/vs_original.py --original .cache/original-vid2vid --device cuda \
        --cases 512x256,1024x512:2,2048x1024:3 --precision fp32,bf16 --out "$OUT/vs_original.jsonl"
fi
echo "== trainer throughput"
timeout 45 $PY bench/train_throughput.py --preset compact --size 512x256 --mixed-precision bf16 --steps 4 | tee "$OUT/train_throughput.jsonl"
echo "== sample models"
$PY scripts/footage_models.py train --tasks "${V2V_TASKS:-street,face,body}" \
    --seconds "${V2V_TRAIN_SECONDS:-90}" --mixed-precision bf16 \
    --device-note "$CARD, bf16, torch $($PY -c 'import torch; print(torch.__version__)')"
} 2>&1 | sed -u '/it\/s\]$/d' | tee "$OUT/log.txt"
cp models/vid2vid/*.safetensors models/vid2vid/*.json "$OUT/" 2>/dev/null
tar czf "$OUT/training_logs.tgz" out/footage_models/*/losses.jsonl out/footage_models/*/samples 2>/dev/null
ls -la "$OUT"
