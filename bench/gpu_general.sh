#!/usr/bin/env bash
# The many-clip models (README "Footage the models never saw") continued on a lent CUDA card, then the speed
# suite on that card, in one call of at most 10 minutes.
#   Here, first (the card's copy of the working tree is limited to 64 MiB):
#       python scripts/device_datasets.py pack faces streets --out .carry --drop instance
#   with .cache/data/vtest.avi for the CLI rows (ENCODE=1), and leave out of the copy the model files the run does
#   not read: a task with a shipped model
#   (models/vid2vid/<task>.safetensors) continues it, another starts as its recipe says (bodies: from
#   body.safetensors).  Two tasks fit in one copy (faces 23 MB, streets 22 MB, bodies 23 MB packed, ~6.5 MB a model).
#   On the card, from the repo root, carrying .carry:
#       OUT=bench/results/<card> bash bench/gpu_general.sh              # train, then the suite
#       OUT=... bash bench/gpu_general.sh more 215                      # then, on the same warm machine: every
#                                                                       #   run resumed (--resume) for 215 s more
#   Each model trains for TRAIN_SECONDS of wall clock, BATCH clips a step, all of them at once on the card;
#   weights and records come back in $OUT/<task>.safetensors|json ($OUT/<task>_more.* after `more`), loss
#   curves and samples in $OUT/runs.tgz.  Then, here: the held-out evaluations of the README (bench/evaluate.py).
#   A dry run on a CPU, small and short: PY=.venv/bin/python TRAIN_SECONDS=40 BATCH=2 WORKERS=1 SUITE=0 MP=no \
#       EXTRA="data.load_size=[72,88] data.crop_size=[72,88]" bash bench/gpu_general.sh
set -u
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
PY=${PY:-python3}
OUT=${OUT:-bench/results/gpu_general}
TASKS=${TASKS:-faces streets}
TRAIN_SECONDS=${TRAIN_SECONDS:-380}
BATCH=${BATCH:-8}
WORKERS=${WORKERS:-6}
MP=${MP:-bf16}
SUITE=${SUITE:-1}                 # 0: no speed suite (CPU dry run)
SUITE_SECONDS=${SUITE_SECONDS:-110}
SUITE_PARTS=${SUITE_PARTS:-generator,training}   # training alone: paper's step eager fp32 / bf16 / bf16 compiled
FAST_PATH=${FAST_PATH:-0}         # 1: bench/fast_path.py on the card after the suite (three models, ~5 minutes)
FAST_PATH_SECONDS=${FAST_PATH_SECONDS:-300}
ENCODE=${ENCODE:-1}               # 1: the street CLI on the card, encoding behind the network or in turn (needs
ENCODE_SECONDS=${ENCODE_SECONDS:-150}   # .cache/data/vtest.avi carried, 7.8 MB, and models/vid2vid/street.safetensors)
MODELS=${MODELS:-out/gpu_general/models}
RUNS=${RUNS:-out/gpu_general/runs}
EXTRA=${EXTRA:-}                  # more trainer overrides, "key=value ..." (dry run: a smaller frame size)

run_all() {
    mkdir -p "$OUT" "$MODELS" "$RUNS/logs"
    local card=cpu torch_v monitor=""
    if command -v nvidia-smi >/dev/null; then
        nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
        card=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
        nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv -l 30 > "$OUT/gpu_use.csv" &
        monitor=$!
    fi
    torch_v=$($PY -c 'import torch; print(torch.__version__)')
    echo "torch $torch_v, $(nproc) CPU cores"
    [ -d .carry ] && $PY scripts/device_datasets.py unpack .carry --into .cache/datasets
    local pids=() names=() t sets start
    for t in $TASKS; do
        # val_fraction 0: only the training split travels, and without val/ the trainer would hold out a clip of it
        sets=(--set "batch_size=$BATCH" --set "num_workers=$WORKERS" --set "n_frames_start=8"
              --set "data.val_fraction=0")
        start="the recipe's init_from (scripts/footage_models.py)"
        if [ -f "models/vid2vid/$t.safetensors" ]; then     # a shipped model of the task: continue it
            sets+=(--set "init_from=models/vid2vid/$t.safetensors"); start="the shipped models/vid2vid/$t.safetensors"
        fi
        for kv in $EXTRA; do sets+=(--set "$kv"); done
        $PY scripts/footage_models.py train --tasks "$t" --seconds "$TRAIN_SECONDS" --mixed-precision "$MP" \
            --models "$MODELS" --runs "$RUNS" "${sets[@]}" \
            --device-note "$card, $MP, torch $torch_v, $BATCH clips a step, one of $(wc -w <<<"$TASKS") trainers\
 sharing the card; continued from $start" \
            > "$RUNS/logs/$t.log" 2>&1 &
        pids+=($!); names+=("$t")
    done
    local i
    for i in "${!pids[@]}"; do wait "${pids[$i]}" || echo "${names[$i]} FAILED (see its log)"; done
    for t in "${names[@]}"; do
        echo "== $t"; grep -v "it/s\]$" "$RUNS/logs/$t.log" | tail -4
        cp "$MODELS/$t.safetensors" "$MODELS/$t.json" "$OUT/" 2>/dev/null
    done
    tar czf "$OUT/runs.tgz" "$RUNS"/logs "$RUNS"/*/losses.jsonl "$RUNS"/*/samples 2>/dev/null
    if [ "$SUITE" = 1 ]; then
        echo "== speed suite (generator rows print as they come; cut at $SUITE_SECONDS s)"
        timeout "$SUITE_SECONDS" $PY bench/suite.py --device cuda --parts "$SUITE_PARTS" \
            --modes "${SUITE_MODES:-tf32,tf32_compile,bf16_compile}" --out "$OUT/suite.json"
    fi
    if [ "$ENCODE" = 1 ] && [ -f .cache/data/vtest.avi ] && [ "$card" != cpu ]; then
        echo "== the street CLI on the card, --write-behind 0 / 4 in turn (cut at $ENCODE_SECONDS s)"
        timeout "$ENCODE_SECONDS" $PY bench/stream_memory.py --modes cli --tasks street --lengths 300 --device cuda \
            --write-behind 0 4 --repeats 2 --machine "$card" --out "$OUT/write_behind.json"
    fi
    if [ "$FAST_PATH" = 1 ]; then
        echo "== the compiled step per shipped model (cut at $FAST_PATH_SECONDS s)"
        timeout "$FAST_PATH_SECONDS" $PY bench/fast_path.py --device cuda --out "$OUT/fast_path.json"
    fi
    [ -n "$monitor" ] && kill "$monitor" 2>/dev/null
    ls -la "$OUT"
}

more() {  # more <seconds>: every run of TASKS resumed where it stopped, all at once, until SIGTERM
    local secs=$1 pids=() t
    for t in $TASKS; do
        (
            # the command its record holds (one line of plain words), resumed; a record of its own follows
            cmd=$($PY -c "import json, sys; print(json.load(open(sys.argv[1]))['command'])" "$MODELS/$t.json")
            # shellcheck disable=SC2086
            timeout -s TERM "$secs" $PY $cmd --resume > "$RUNS/logs/${t}_more.log" 2>&1
            cp "$RUNS/$t/model.safetensors" "$OUT/${t}_more.safetensors"
            $PY - "$MODELS/$t.json" "$OUT/${t}_more.json" "$OUT/${t}_more.safetensors" "$secs" <<'PY'
import json, os, sys
from v2v.model.checkpoint import read_metadata
src, dst, model, secs = sys.argv[1:]
r = json.load(open(src))
step = json.loads(read_metadata(model)["v2v.train"])["step"]
if step <= r["steps"]:          # stopped before it saved a step: nothing new to return
    os.remove(model)
    sys.exit(f"{r['task']}: no step saved beyond {r['steps']} in {secs} s; nothing returned")
r.update(task=r["task"] + "_more", steps=step, seconds=r["seconds"] + int(secs),
         device=r["device"] + f"; then resumed for {secs} s more (--resume)", command=r["command"] + " --resume")
if "batch_size" in r:
    r["clips"] = step * r["batch_size"]
json.dump(r, open(dst, "w"), indent=2)
PY
            grep -v "it/s\]$" "$RUNS/logs/${t}_more.log" | tail -3
        ) &
        pids+=($!)
    done
    wait "${pids[@]}"
    tar czf "$OUT/runs_more.tgz" "$RUNS"/logs "$RUNS"/*/losses.jsonl "$RUNS"/*/samples 2>/dev/null
    ls -la "$OUT"
}

mkdir -p "$OUT"
case ${1:-train} in
    train) run_all 2>&1 | sed -u '/it\/s\]$/d' | tee "$OUT/log.txt" ;;
    more) more "${2:?seconds}" ;;
    *) echo "usage: bench/gpu_general.sh [train | more <seconds>]" >&2; exit 2 ;;
esac
