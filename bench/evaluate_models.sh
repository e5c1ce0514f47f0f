# Sourced by bench/cpu_study.sh and bench/gpu_study.sh: one bench/evaluate.py run over named models.
#   evaluate <task> <out name> <model:row name ...> [-- extra bench/evaluate.py args]
# reads $PY, $MODELS (<model>.safetensors), $RESULTS (<out name>.json) and $MACHINE.
evaluate() {
    local task=$1 out=$2; shift 2
    local paths=() names=() extra=()
    while [ $# -gt 0 ]; do
        if [ "$1" = "--" ]; then shift; extra=("$@"); break; fi
        paths+=("$MODELS/${1%%:*}.safetensors"); names+=("${1#*:}"); shift
    done
    $PY bench/evaluate.py --task "$task" --models "${paths[@]}" --names "${names[@]}" --machine "$MACHINE" \
        --out "$RESULTS/$out.json" "${extra[@]}"
}
