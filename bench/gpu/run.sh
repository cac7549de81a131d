#!/usr/bin/env bash
# The paper-scale run on a CUDA machine with network, end to end, one command:
#   bench/gpu/run.sh            (from the repository root; everything below is an overridable env var)
#
# 1. BPO rewriter training from a 7B chat model on the THUDM/BPO pairs (the shared data's pairs
#    when offline) with `accelerate launch` on every visible GPU.
# 2. Vicuna Eval rewritten by that rewriter (in-process vLLM), then `bpo eval` with the target
#    (and judge) served by a vLLM OpenAI-compatible server: win/tie/loss and ΔWR.
# 3. An OPRO GSM8K instruction search with the same vLLM server as scorer (and optimizer).
# Figures are printed at the end and kept under $OUT. Not run by its authors (no GPU was lent):
# see bench/gpu/README.md for what each step costs and what to change.
set -euo pipefail

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
    echo "bench/gpu/run.sh: no CUDA GPU visible (nvidia-smi -L lists none); this recipe needs one" >&2
    exit 2
fi

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"
NGPU="${NGPU:-$(nvidia-smi -L | grep -c '^GPU')}"
OUT="${OUT:-$REPO/runs/gpu-$(date +%Y%m%d-%H%M%S)}"
BASE_MODEL="${BASE_MODEL:-Qwen/Qwen2.5-7B-Instruct}"      # the paper: meta-llama/Llama-2-7b-chat-hf (gated)
TARGET_MODEL="${TARGET_MODEL:-Qwen/Qwen2.5-7B-Instruct}"  # the model whose answers are judged
JUDGE_SPEC="${JUDGE_SPEC:-}"                              # e.g. openai:gpt-4o (paper: GPT-4); default: the target server
TRAIN_DATA="${TRAIN_DATA:-THUDM/BPO}"
BPO_DATA_DIR="${BPO_DATA_DIR:-/work/shared/data/bpo}"     # Vicuna Eval; fetched from thu-coai/BPO when absent
OPRO_DATA_DIR="${OPRO_DATA_DIR:-/work/shared/data/opro/gsm_data}"
EPOCHS="${EPOCHS:-3}"
OPRO_STEPS="${OPRO_STEPS:-20}"
PORT="${PORT:-8011}"
PY="${PYTHON:-python3}"
VLLM_VENV="${VLLM_VENV:-$HOME/.cache/promptopt/vllm-gpu-venv}"
mkdir -p "$OUT"
echo "== $NGPU GPU(s); output in $OUT"

# ---- environments: training in the current python, vLLM (it pins its own torch) in its own venv
"$PY" -c 'import promptopt, torch, transformers, accelerate, peft' 2>/dev/null \
    || "$PY" -m pip install -q -e "$REPO[train,plot]"
[ -x "$VLLM_VENV/bin/python" ] && "$VLLM_VENV/bin/python" -c 'import vllm, promptopt' 2>/dev/null \
    || PROMPTOPT_VLLM_PACKAGE="${VLLM_PACKAGE:-vllm}" "$REPO/scripts/make_vllm_venv.sh" "$VLLM_VENV"
VPY="$VLLM_VENV/bin/python"

# ---- data: the full pairs from the hub, else the shared data (offline)
if [ "$TRAIN_DATA" = "THUDM/BPO" ] && ! "$PY" -c 'import datasets; datasets.load_dataset("THUDM/BPO", split="train[:1]")' >/dev/null 2>&1; then
    TRAIN_DATA="$BPO_DATA_DIR/history_eef4e1f/train_data_val.json"
    echo "== THUDM/BPO not reachable: training on $TRAIN_DATA (300 pairs) instead"
fi
VICUNA="$BPO_DATA_DIR/testset/vicuna_eval.jsonl"
if [ ! -f "$VICUNA" ]; then
    VICUNA="$OUT/vicuna_eval.jsonl"
    curl -fsSL -o "$VICUNA" https://raw.githubusercontent.com/thu-coai/BPO/9bf541587d1456fda6ffa46001ab545e892f4a2c/data/testset/vicuna_eval.jsonl
fi
if [ ! -d "$OPRO_DATA_DIR" ]; then OPRO_DATA_DIR=""; fi  # gsm8k then loads from the hub

# ---- 1. train the rewriter (DDP over all GPUs; LoRA on fewer than 4 GPUs, where a full 7B
#         fine-tune's optimizer state does not fit)
LORA=(); [ "$NGPU" -lt 4 ] && LORA=(--lora)
ACCEL_CFG="${ACCEL_CFG:-configs/accelerate/ddp.yaml}"
RESUME=(); [ -d "$OUT/rewriter" ] && ls -d "$OUT"/rewriter/checkpoint-* >/dev/null 2>&1 && RESUME=(--resume)
if [ ! -f "$OUT/rewriter/bpo_rewriter.json" ]; then  # the final folder is written last
    "$PY" -m accelerate.commands.accelerate_cli launch --config_file "$ACCEL_CFG" --num_processes "$NGPU" \
        -m promptopt bpo train --data "$TRAIN_DATA" --base-model "$BASE_MODEL" --out "$OUT/rewriter" \
        --epochs "$EPOCHS" --bf16 --chat-template --max-length 1024 --batch-size 4 --save-steps 200 \
        "${LORA[@]}" "${RESUME[@]}" --quiet ${TRAIN_ARGS:-} 2>&1 | tee "$OUT/train.log"
fi

# ---- 2a. rewrite Vicuna Eval with the rewriter on in-process vLLM (before the server takes the GPU)
[ -s "$OUT/vicuna_rewritten.jsonl" ] || "$VPY" -m promptopt bpo rewrite --rewriter "$OUT/rewriter" \
    --backend vllm --input "$VICUNA" --field text --output "$OUT/vicuna_rewritten.jsonl"

# ---- 2b. serve the target with vLLM
SERVER_LOG="$OUT/vllm_server.log"
"$VPY" -m vllm.entrypoints.openai.api_server --model "$TARGET_MODEL" --served-model-name target \
    --host 127.0.0.1 --port "$PORT" --tensor-parallel-size "${TP:-1}" --max-model-len 4096 \
    >"$SERVER_LOG" 2>&1 &
SERVER_PID=$!
trap 'kill "$SERVER_PID" 2>/dev/null || true' EXIT
for _ in $(seq 1 180); do
    curl -fs "http://127.0.0.1:$PORT/v1/models" >/dev/null 2>&1 && break
    kill -0 "$SERVER_PID" 2>/dev/null || { echo "vLLM server died; see $SERVER_LOG" >&2; exit 1; }
    sleep 5
done
TARGET_SPEC="openai:target@http://127.0.0.1:$PORT/v1"
JUDGE_SPEC="${JUDGE_SPEC:-$TARGET_SPEC}"

# ---- 2c. bpo eval on Vicuna Eval: original vs rewritten prompts, judged both orders
"$PY" -m promptopt bpo eval --testset "$OUT/vicuna_rewritten.jsonl" --rewritten-field optimized_prompt \
    --target-model "$TARGET_SPEC" --judge-model "$JUDGE_SPEC" --concurrency 32 \
    --out "$OUT/bpo_eval" 2>&1 | tee "$OUT/bpo_eval.txt"

# ---- 3. OPRO GSM8K instruction search scored (and proposed) through the vLLM server
DATA_DIR_ARGS=(); [ -n "$OPRO_DATA_DIR" ] && DATA_DIR_ARGS=(--data-dir "$OPRO_DATA_DIR")
"$PY" -m promptopt opro run --task instructions --dataset gsm8k "${DATA_DIR_ARGS[@]}" \
    --optimizer-model "${OPRO_OPTIMIZER_SPEC:-$TARGET_SPEC}" --scorer-model "$TARGET_SPEC" \
    --steps "$OPRO_STEPS" --per-step 8 --seed 0 --run-dir "$OUT/opro_gsm8k" \
    $( [ -f "$OUT/opro_gsm8k/journal.jsonl" ] && echo --resume ) 2>&1 | tee "$OUT/opro.txt"
"$PY" -m promptopt opro report "$OUT/opro_gsm8k" >/dev/null

echo
echo "== figures ($OUT)"
grep -E "loss|steps" "$OUT/train.log" | tail -3 || true
tail -12 "$OUT/bpo_eval.txt"
tail -6 "$OUT/opro.txt"
