#!/usr/bin/env bash
# The equal-budget comparisons of README "The paper's comparisons" (CPU study), trained and evaluated on a
# CPU in one go: ours (recipe of scripts/footage_models.py, generated_start 0.5) against its one-switch
# variants, per task.  From the repo root, after `bash scripts/setup.sh` and
# `.venv/bin/python scripts/footage_models.py prepare`:
#     bash bench/cpu_study.sh                # ~120 min of training + ~10 min of evaluation on 2 cores
#     TASKS="body" bash bench/cpu_study.sh   # one task
#     TASKS="fg" bash bench/cpu_study.sh     # the foreground-prior comparison (not in the default run)
#     TASKS="face_fast body_fast street_fast" bash bench/cpu_study.sh   # the fast preset against ours
#     TASKS=face_seeds SEEDS="1 2" bash bench/cpu_study.sh  # the face recipe again per seed: ours and two
#                                            # faster fast designs (~45 min a seed), scored with any seed-0 models
#     TASKS=fast_seeds SEEDS="1 2" bash bench/cpu_study.sh  # the fast preset beside ours per seed on face
#                                            # and street (~55 min a seed; models face_seeds made are kept)
#     TASKS=candidate CANDIDATE=candidate5 CANDIDATE_SET="head_kernel=3 skips=true n_blocks=2 block_dilation=2" \
#         SEEDS="1 2" bash bench/cpu_study.sh   # a fast design beside ours per seed on face and street (~25 min a seed)
#     SKIP_TRAIN=1 bash bench/cpu_study.sh   # only evaluate the models already in $MODELS
# Models land in $MODELS (default out/cpu_study/models), results in bench/results/cpu_study/.
set -eu
export PYTHONUNBUFFERED=1
PY=${PY:-.venv/bin/python}
MODELS=${MODELS:-out/cpu_study/models}
base_models=$MODELS
RUNS=${RUNS:-out/cpu_study/runs}
RESULTS=${RESULTS:-bench/results/cpu_study}
MACHINE=${MACHINE:-"2-core CPU (project machine)"}
NOTE="$MACHINE, fp32, torch $($PY -c 'import torch; print(torch.__version__)')"
mkdir -p "$RESULTS"

train() {  # train <task list> <clips> [--set k=v ...]: same data, same number of clips for every variant
    local tasks=$1 steps=$2; shift 2
    [ -n "${SKIP_TRAIN:-}" ] && return 0
    $PY scripts/footage_models.py train --tasks "$tasks" --steps "$steps" --seconds 100000 "$@" \
        --models "$MODELS" --runs "$RUNS" --device-note "$NOTE"
}

source bench/evaluate_models.sh   # evaluate <task> <out name> <model:row name ...> [-- args]

for task in ${TASKS:-body face street}; do
    case $task in
    body)    # 160x120 crops of the walking area; pose condition following re-extracted with mediapipe
        train body,body_nodv,body_perframe 300
        evaluate body body "body:ours" "body_nodv:no video discriminator" "body_perframe:per-frame (no flow)"
        evaluate body body_first_frame "body:ours" "body_nodv:no video discriminator" \
            "body_perframe:per-frame (no flow)" -- --first-frame ;;
    face)    # 176x144, dlib landmarks re-extracted from the outputs
        train face,face_nodv,face_perframe 200
        evaluate face face "face:ours" "face_nodv:no video discriminator" "face_perframe:per-frame (no flow)"
        evaluate face face_first_frame "face:ours" "face_nodv:no video discriminator" \
            "face_perframe:per-frame (no flow)" -- --first-frame ;;
    street)  # 128x96 (a quarter of the shipped model's pixels): the generated start against the paper's real
             # start, the mask regulariser on generated starts only or not at all, and per-frame synthesis
             # (no-fg / no-D_V: the GPU study, README)
        train street,street_realstart,street_maskreg_genonly,street_nomaskreg,street_perframe 300 \
            --set "data.load_size=[96,128]" --set "data.crop_size=[96,128]"
        for mode in every first; do
            extra=(--real-video .cache/data/vtest.avi); [ $mode = first ] && extra+=(--first-frame)
            evaluate street "street$([ $mode = first ] && echo _first_frame)" "street:ours" \
                "street_realstart:ours, real-start training only" \
                "street_maskreg_genonly:ours, mask regulariser on generated starts only" \
                "street_nomaskreg:ours, no mask regulariser" \
                "street_perframe:per-frame (no flow)" \
                -- "${extra[@]}"
        done ;;
    fg)      # the foreground prior (issue 16): the original code's hard foreground (never warped) against
             # Eq. 9 as written (the mask blends there too), street at 128x96 as above; run it by name
        train street,street_fgpaper 300 --set "data.load_size=[96,128]" --set "data.crop_size=[96,128]"
        for mode in every first; do
            extra=(--real-video .cache/data/vtest.avi); [ $mode = first ] && extra+=(--first-frame)
            evaluate street "street_fg$([ $mode = first ] && echo _first_frame)" \
                "street:ours, hard foreground (original code)" "street_fgpaper:ours, paper blend (Eq. 9)" \
                -- "${extra[@]}"
        done ;;
    body_fast|face_fast|street_fast)   # the fast preset (issue 15) against ours, same recipe and clip count
        base=${task%_fast}
        case $base in
            body) train body,body_fast 300; extra=() ;;
            face) train face,face_fast 200; extra=() ;;
            street) train street,street_fast 300 --set "data.load_size=[96,128]" --set "data.crop_size=[96,128]"
                    extra=(--real-video .cache/data/vtest.avi) ;;
        esac
        evaluate "$base" "$task" "$base:ours (small, ngf 24)" "$task:fast" -- "${extra[@]}"
        evaluate "$base" "${task}_first_frame" "$base:ours (small, ngf 24)" "$task:fast" -- "${extra[@]}" --first-frame ;;
    face_seeds)  # one run's spread (bench/NOTES.md "Faces at 200 clips, three seeds"): the face recipe per seed for
                 # ours and the two fast designs that ran >= 3x small (the second, the third candidate), each in its
                 # own folders under $MODELS/seed<N>/; then every model in one table, with the seed-0 models where
                 # they are ($MODELS/face, $MODELS/design2/face_fast, $MODELS/candidate3/face_fast)
        third=(--set model.head_kernel=3 --set model.skips=true --set model.n_blocks=2 --set model.block_dilation=1)
        second=("${third[@]}" --set model.n_downsample=2)
        rows=()
        for seed in ${SEEDS:-1 2}; do
            MODELS=$base_models/seed$seed RUNS=$RUNS/seed$seed train face 200 --set seed="$seed"
            MODELS=$base_models/seed$seed/design2 RUNS=$RUNS/seed$seed/design2 \
                train face_fast 200 --set seed="$seed" "${second[@]}"
            MODELS=$base_models/seed$seed/candidate3 RUNS=$RUNS/seed$seed/candidate3 \
                train face_fast 200 --set seed="$seed" "${third[@]}"
            rows+=("seed$seed/face:ours, seed $seed" "seed$seed/design2/face_fast:second design, seed $seed"
                   "seed$seed/candidate3/face_fast:third candidate, seed $seed")
        done
        seed0=()
        for m in "face:ours, seed 0" "design2/face_fast:second design, seed 0" \
                 "candidate3/face_fast:third candidate, seed 0"; do
            if [ -f "$base_models/${m%%:*}.safetensors" ]; then seed0+=("$m"); fi
        done
        MODELS=$base_models evaluate face face_seeds "${seed0[@]}" "${rows[@]}"
        MODELS=$base_models evaluate face face_seeds_first_frame "${seed0[@]}" "${rows[@]}" -- --first-frame ;;
    fast_seeds)  # the fast preset (bench/NOTES.md "The `fast` preset paired with ours per seed") beside ours per seed
                 # on the face and street recipes, in $MODELS/seed<N>/ (shared with face_seeds: a model already there
                 # is kept, not trained again); then one table per task, with the seed-0 models where they are
        for seed in ${SEEDS:-1 2}; do
            for pair in "face 200" "street 300"; do
                set -- $pair; base=$1 steps=$2; todo=()
                for name in "$base" "${base}_fast"; do
                    [ -f "$base_models/seed$seed/$name.safetensors" ] || todo+=("$name")
                done
                [ ${#todo[@]} -eq 0 ] && continue
                size=(); [ "$base" = street ] && size=(--set "data.load_size=[96,128]" --set "data.crop_size=[96,128]")
                MODELS=$base_models/seed$seed RUNS=$RUNS/seed$seed \
                    train "$(IFS=,; echo "${todo[*]}")" "$steps" --set seed="$seed" "${size[@]}"
            done
        done
        for base in face street; do
            rows=(); extra=(); [ "$base" = street ] && extra=(--real-video .cache/data/vtest.avi)
            for seed in 0 ${SEEDS:-1 2}; do
                dir=; [ "$seed" = 0 ] || dir=seed$seed/
                for m in "$base:ours" "${base}_fast:fast"; do
                    [ -f "$base_models/$dir${m%%:*}.safetensors" ] && rows+=("$dir${m%%:*}:${m#*:}, seed $seed")
                done
            done
            MODELS=$base_models evaluate "$base" "${base}_fast_seeds" "${rows[@]}" -- "${extra[@]}"
            MODELS=$base_models evaluate "$base" "${base}_fast_seeds_first_frame" "${rows[@]}" -- "${extra[@]}" \
                --first-frame
        done ;;
    candidate)   # a fast design (bench/NOTES.md "A fifth candidate") beside ours per seed: the fast preset with the
                 # model fields in CANDIDATE_SET ("key=value ...") on the face and street recipes, in
                 # $MODELS/seed<N>/$CANDIDATE/; ours at each seed where fast_seeds left it (trained if missing)
        name=${CANDIDATE:?"CANDIDATE=<name> names the design"}; fields=()
        for kv in ${CANDIDATE_SET:?"CANDIDATE_SET='key=value ...' holds its model fields"}; do
            fields+=(--set "model.$kv")
        done
        for seed in ${SEEDS:-1 2}; do
            for pair in "face 200" "street 300"; do
                set -- $pair; base=$1 steps=$2
                size=(); [ "$base" = street ] && size=(--set "data.load_size=[96,128]" --set "data.crop_size=[96,128]")
                [ -f "$base_models/seed$seed/$base.safetensors" ] || MODELS=$base_models/seed$seed \
                    RUNS=$RUNS/seed$seed train "$base" "$steps" --set seed="$seed" "${size[@]}"
                [ -f "$base_models/seed$seed/$name/${base}_fast.safetensors" ] || MODELS=$base_models/seed$seed/$name \
                    RUNS=$RUNS/seed$seed/$name train "${base}_fast" "$steps" --set seed="$seed" "${size[@]}" \
                    "${fields[@]}"
            done
        done
        for base in face street; do
            rows=(); extra=(); [ "$base" = street ] && extra=(--real-video .cache/data/vtest.avi)
            for seed in ${SEEDS:-1 2}; do
                rows+=("seed$seed/$base:ours, seed $seed" "seed$seed/$name/${base}_fast:$name, seed $seed")
            done
            MODELS=$base_models evaluate "$base" "${base}_$name" "${rows[@]}" -- "${extra[@]}"
            MODELS=$base_models evaluate "$base" "${base}_${name}_first_frame" "${rows[@]}" -- "${extra[@]}" \
                --first-frame
        done ;;
    *) echo "unknown task $task (body, face, street, fg, body_fast, face_fast, street_fast, face_seeds, fast_seeds," \
            "candidate)" >&2
       exit 2 ;;
    esac
done
ls -la "$RESULTS"
