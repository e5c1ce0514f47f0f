#!/usr/bin/env bash
# The shipped footage models and the paper's comparisons (README "The paper's comparisons", GPU study),
# trained side by side on one CUDA card in one short lease, then evaluated anywhere.
#   On the card, from the repo root, with the datasets of `scripts/footage_models.py prepare` in
#   .cache/datasets (or as .carry/<task>.tgz archives of them, .flow_cache left out):
#       OUT=bench/results/<card> bash bench/gpu_study.sh train
#   It trains 8 models at once (ours, per-frame, and for street no-fg / no-D_V), each for the same number of
#   clips per task (STEPS_STREET / STEPS_FACE / STEPS_BODY) or until TRAIN_SECONDS of wall clock, whichever
#   comes first; each model's JSON records the clips it reached.  The weights come back in $OUT/models_*.tgz.
#   With device time left, one model can go on alone from where it stopped (e.g. body for 235 s: the
#   shipped body model), its weights in $OUT/<task>_long.safetensors:
#       OUT=bench/results/<card> bash bench/gpu_study.sh extend body 235
#   Then, on any machine (the 2-core CPU here), with the weights unpacked into $MODELS:
#       bash bench/gpu_study.sh evaluate
set -u
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
ACTION=${1:?usage: bench/gpu_study.sh train|extend <task> <seconds>|evaluate}
OUT=${OUT:-bench/results/gpu_study}
MODELS=${MODELS:-out/gpu_study/models}
RUNS=${RUNS:-out/gpu_study/runs}
RESULTS=${RESULTS:-bench/results/gpu_study}
STEPS_STREET=${STEPS_STREET:-900} STEPS_FACE=${STEPS_FACE:-900} STEPS_BODY=${STEPS_BODY:-1500}
TRAIN_SECONDS=${TRAIN_SECONDS:-470}

train_all() {
    local py=${PY:-python3} card
    mkdir -p "$OUT" "$MODELS" .cache/datasets
    for f in .carry/*.tgz; do [ -f "$f" ] && tar xzf "$f" -C .cache/datasets; done
    card=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    $py -c "import torch, accelerate, cv2; print('torch', torch.__version__, 'accelerate', accelerate.__version__)"
    nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv -l 60 > "$OUT/gpu_use.csv" &
    local monitor=$! pids=() names=()
    launch() {  # launch <task or variant> <clips>: one trainer process, in the background
        local name=$1 steps=$2
        $py scripts/footage_models.py train --tasks "$name" --steps "$steps" --seconds "$TRAIN_SECONDS" \
            --mixed-precision bf16 --models "$MODELS" --runs "$RUNS" \
            --device-note "$card, bf16, one of 8 trainers sharing the card, torch $($py -c 'import torch; print(torch.__version__)')" \
            > "$RUNS/logs/$name.log" 2>&1 &
        pids+=($!); names+=("$name")
    }
    mkdir -p "$RUNS/logs"
    launch body "$STEPS_BODY";   launch body_perframe "$STEPS_BODY"
    launch street "$STEPS_STREET"; launch street_perframe "$STEPS_STREET"
    launch street_nofg "$STEPS_STREET"; launch street_nodv "$STEPS_STREET"
    launch face "$STEPS_FACE";   launch face_perframe "$STEPS_FACE"
    local i
    for i in "${!pids[@]}"; do wait "${pids[$i]}" || echo "${names[$i]} FAILED (see its log)"; done
    kill "$monitor" 2>/dev/null
    for i in "${names[@]}"; do echo "== $i"; grep -v "it/s\]$" "$RUNS/logs/$i.log" | tail -3; done
    # at most 16 MiB per returned file: two ~7 MB models per archive
    tar czf "$OUT/models_body.tgz" -C "$MODELS" body.safetensors body.json body_perframe.safetensors body_perframe.json
    tar czf "$OUT/models_street.tgz" -C "$MODELS" street.safetensors street.json street_perframe.safetensors street_perframe.json
    tar czf "$OUT/models_street_ablations.tgz" -C "$MODELS" street_nofg.safetensors street_nofg.json street_nodv.safetensors street_nodv.json
    tar czf "$OUT/models_face.tgz" -C "$MODELS" face.safetensors face.json face_perframe.safetensors face_perframe.json
    tar czf "$OUT/training_logs.tgz" "$RUNS"/logs "$RUNS"/*/losses.jsonl "$RUNS"/*/samples 2>/dev/null
    ls -la "$OUT"
}

extend() {  # extend <task> <seconds>: resume that run with no clip limit, alone on the card, until SIGTERM
    local name=$1 secs=$2 py=${PY:-python3} cmd
    cmd=$($py -c "import json, sys; print(json.load(open(sys.argv[1]))['command'])" "$MODELS/$name.json")
    # shellcheck disable=SC2086  # the recorded command is one line of plain words
    timeout -s TERM "$secs" $py $cmd --set max_steps=1000000 --set decay_start=1000000 --resume
    cp "$RUNS/$name/model.safetensors" "$MODELS/${name}_long.safetensors"
    $py - "$MODELS/$name.json" "$MODELS/${name}_long.json" "$RUNS/$name/losses.jsonl" "$secs" <<'PY'
import json, sys
src, dst, losses, secs = sys.argv[1:]
r = json.load(open(src))
steps = json.loads(open(losses).read().splitlines()[-1])["step"]
r.update(task=r["task"] + "_long", steps=steps, seconds=r["seconds"] + int(secs),
         device=r["device"] + f"; then continued alone on the card for {secs} s (--resume)",
         command=r["command"] + " --set max_steps=1000000 --set decay_start=1000000 --resume")
json.dump(r, open(dst, "w"), indent=2)
PY
    mkdir -p "$OUT"; cp "$MODELS/${name}_long".* "$OUT/"
    tar czf "$OUT/${name}_long_logs.tgz" "$RUNS/$name/losses.jsonl" "$RUNS/$name/samples" 2>/dev/null
}

evaluate_all() {
    PY=${PY:-.venv/bin/python} MACHINE=${MACHINE:-"2-core CPU (project machine)"}
    mkdir -p "$RESULTS"
    source bench/evaluate_models.sh   # evaluate <task> <out name> <model:row name ...> [-- args]
    local mode suffix extra
    for mode in every first; do
        suffix=""; extra=(); [ $mode = first ] && { suffix=_first_frame; extra=(--first-frame); }
        evaluate street "street$suffix" "street:ours" "street_nofg:no foreground prior" "street_nodv:no video discriminator" \
            "street_perframe:per-frame (no flow)" -- --real-video .cache/data/vtest.avi "${extra[@]}"
        evaluate face "face$suffix" "face:ours" "face_perframe:per-frame (no flow)" -- "${extra[@]}"
        local long=(); [ -f "$MODELS/body_long.safetensors" ] && long=("body_long:ours, continued alone (extend)")
        [ $mode = every ] && extra+=(--strip docs/body_strip.jpg)      # the README's body picture
        evaluate body "body$suffix" "body:ours" "${long[@]}" "body_perframe:per-frame (no flow)" -- "${extra[@]}"
    done
    ls -la "$RESULTS"
}

case $ACTION in
    train) mkdir -p "$OUT"; train_all 2>&1 | sed -u '/it\/s\]$/d' | tee "$OUT/train.log" ;;
    extend) extend "${2:?task}" "${3:?seconds}" 2>&1 | sed -u '/it\/s\]$/d' ;;
    evaluate) evaluate_all ;;
    *) echo "usage: bench/gpu_study.sh train|extend <task> <seconds>|evaluate" >&2; exit 2 ;;
esac
