#!/usr/bin/env bash
# On the GPU box (device tool): build `tq` and the CUDA tests, run the model's CUDA tests, then the
# proxy model on the CPU and on the GPU: perplexity (tq3 at ctx 256 over the 10 windows of the
# docs/MODEL.md table, tq3 and k4v4 at ctx 512) and greedy generation of 128 tokens.
#   bash bench/cuda/run_model_on_box.sh [all|test|bench|compare|half]
# compare: the tests, then tq3 at ctx 512 over 100 windows on CPU and GPU, the CPU with reference
# attention, and greedy tq3 text from four attention paths. half: the CudaLlama tests, then the GPU
# forward with fp16 and bf16 weights.
# Builds into /tmp/bmodel (outside the carried folder, so a warm box keeps it). Logs go to $OUT;
# a summary is printed last.
set -uo pipefail
what=${1:-all}
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
FINAL=$OUT; OUT=$(mktemp -d)  # every log goes into one archive (the device tool returns few files)
trap 'tar -C "$OUT" -czf "$FINAL/logs.tar.gz" .' EXIT
B=/tmp/bmodel
t0=$SECONDS
# Highway is not installed on the box: Debian's libhwy-dev unpacked into .hwy/ travels with `carry`.
hwy=(); [[ -d .hwy ]] && hwy=(-Dhwy_DIR="$PWD/.hwy/usr/lib/x86_64-linux-gnu/cmake/hwy") \
  && export LD_LIBRARY_PATH="$PWD/.hwy/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; nproc; cat COMMIT 2>/dev/null; } > "$OUT/box.txt"
cmake -S . -B $B "${hwy[@]}" -G Ninja -DCMAKE_BUILD_TYPE=Release -DTQ_ENABLE_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90a \
  -DTQ_BUILD_BENCH=OFF -DTQ_WITH_FAISS=OFF > "$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 1; }
cmake --build $B -j 16 --target tq tq_test_cuda >> "$OUT/build.log" 2>&1 \
  || { grep -E "error" -A5 "$OUT/build.log" | head -60; exit 1; }
echo "build ok ($((SECONDS - t0)) s)"
sum=()
ppl() {  # name, args...
  local name=$1; shift
  timeout 120 $B/tq perplexity $M "$@" > "$OUT/ppl_$name.json" 2> "$OUT/ppl_$name.err"
  local rc=$?
  sum+=("$(python3 - "$OUT/ppl_$name.json" "$name" "$rc" <<'PY'
import json, sys
p, name, rc = sys.argv[1:]
try:
  j = json.load(open(p))
  print(f"ppl {name:22s} kv {j['kv']:18s} ref {j['kv_ref']:18s} ppl {j['ppl']:.4f} ref {j['ppl_ref']:.4f} ratio {j['ppl_ratio']:.4f} "
        f"KLD {j['kld_mean']:.4f}/{j['kld_max']:.2f} top1 {100*j['top1_agree']:.2f}% tok/s {j['tokens_per_s']:.0f} ref {j['tokens_per_s_ref']:.0f} ({j['tokens']} tok)")
except Exception as e:
  print(f"ppl {name}: exit {rc}, {e}")
PY
)")
}
[[ $what == half ]] && FILTER='CudaLlama*'
if [[ $what == all || $what == test || $what == compare || $what == half ]]; then
  timeout 120 $B/tests/tq_test_cuda --gtest_filter="${FILTER:-CudaLlama*:CudaKvStore*}" > "$OUT/test.log" 2>&1
  rc=$?
  sum+=("tests ${FILTER:-CudaLlama*:CudaKvStore*}: exit $rc")
  sum+=("$(grep -E '^\[  (PASSED|FAILED) ' "$OUT/test.log" | tr '\n' ' ')")
  grep -vE "^\[ measured \]" "$OUT/test.log" | grep -E -A4 "Failure" | head -30
fi
if [[ $what == all || $what == bench ]]; then
  M="--model data/proxy/proxy.gguf --text data/proxy/heldout.txt --json --no-progress"
  ppl tq3_256_cpu --ctx 256 --max-tokens 2550 --kv tq3
  ppl tq3_256_kvcuda --ctx 256 --max-tokens 2550 --kv tq3 --kv-store cuda
  ppl tq3_256_dev --ctx 256 --max-tokens 2550 --kv tq3 --device cuda
  ppl fp16_256_dev --ctx 256 --max-tokens 2550 --kv fp16 --device cuda
  ppl tq3_512_cpu --ctx 512 --max-tokens 5110 --kv tq3
  ppl tq3_512_dev --ctx 512 --max-tokens 5110 --kv tq3 --device cuda
  ppl k4v4_512_cpu --ctx 512 --max-tokens 5110 --kv k4v4
  ppl k4v4_512_dev --ctx 512 --max-tokens 5110 --kv k4v4 --device cuda
  for dev in cpu cuda; do
    for kv in tq3 fp32; do
      timeout 60 $B/tq generate --model data/proxy/proxy.gguf -n 128 --kv $kv --device $dev \
        > "$OUT/gen_${kv}_$dev.txt" 2> "$OUT/gen_${kv}_$dev.err"
      sum+=("generate $kv $dev: exit $? $(tail -1 "$OUT/gen_${kv}_$dev.err")")
    done
  done
  cmp -s "$OUT/gen_fp32_cpu.txt" "$OUT/gen_fp32_cuda.txt" && sum+=("generate fp32: same text on cpu and cuda") \
    || sum+=("generate fp32: texts differ between cpu and cuda")
  cmp -s "$OUT/gen_tq3_cpu.txt" "$OUT/gen_tq3_cuda.txt" && sum+=("generate tq3: same text on cpu and cuda") \
    || sum+=("generate tq3: texts differ between cpu and cuda")
  ppl tq3_512_dev_all --ctx 512 --kv tq3 --device cuda  # the whole held-out text, GPU only
fi
if [[ $what == compare ]]; then
  M="--model data/proxy/proxy.gguf --text data/proxy/heldout.txt --json --no-progress"
  ppl tq3_512_100w_dev --ctx 512 --max-tokens 51100 --kv tq3 --device cuda
  ppl tq3_512_cpuref --ctx 512 --max-tokens 5110 --kv tq3 --attn reference
  ppl tq3_512_100w_cpu --ctx 512 --max-tokens 51100 --kv tq3
  gen() {  # name, args...
    local name=$1; shift
    timeout 60 $B/tq generate --model data/proxy/proxy.gguf -n 128 --kv tq3 "$@" > "$OUT/gen_$name.txt" 2> "$OUT/gen_$name.err"
    sum+=("generate tq3 $name: exit $? $(tail -1 "$OUT/gen_$name.err" | sed 's/.*decode/decode/')")
  }
  gen cpu_fused; gen cpu_reference --attn reference; gen kvstore_cuda --kv-store cuda; gen device_cuda --device cuda
  for n in cpu_reference kvstore_cuda device_cuda; do
    sum+=("generate tq3 $n vs cpu_fused: first differing byte $(cmp "$OUT/gen_cpu_fused.txt" "$OUT/gen_$n.txt" | awk '{print $5}' | tr -d ,) of $(wc -c < "$OUT/gen_cpu_fused.txt")")
  done
fi
if [[ $what == half ]]; then
  M="--model data/proxy/proxy.gguf --text data/proxy/heldout.txt --json --no-progress"
  for w in fp16 bf16; do ppl tq3_512_dev_$w --ctx 512 --max-tokens 5110 --kv tq3 --device cuda --weights $w; done
  timeout 30 $B/tq generate --model data/proxy/proxy.gguf -n 128 --kv tq3 --device cuda --weights fp16 \
    > "$OUT/gen_fp16w.txt" 2> "$OUT/gen_fp16w.err"
  sum+=("generate tq3 cuda fp16 weights: exit $? $(tail -1 "$OUT/gen_fp16w.err" | sed 's/.*decode/decode/')")
fi
echo "---- summary ($((SECONDS - t0)) s) ----"
cat "$OUT/box.txt"
printf '%s\n' "${sum[@]}"
# Largest GPU-vs-CPU logits difference per (head_dim, codec) over the test's calls.
grep -E "^\[ measured \]" "$OUT/test.log" 2>/dev/null | sed 's/\[ measured \] //' \
  | awk '{k=$2" "$3; if (!(k in m) || $13+0 > m[k]+0) m[k]=$13; t[k]=$15} END {for (k in m) print "test max rel L2 head_dim", k, m[k], "tol", t[k]}' | sort
