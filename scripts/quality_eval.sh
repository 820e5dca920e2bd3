#!/usr/bin/env bash
# Regenerates every table and figure of docs/QUALITY.md into docs/quality/ (<name>.json from
# `tq eval --json`, <name>.svg its Pareto plot), then the markdown tables (docs/quality/tables.md).
# Usage: bash scripts/quality_eval.sh [name ...]   (default: all; single-threaded, ~5 min on one core)
# Needs: build/cpu/tq (cmake --build --preset cpu --target tq), npm, /usr/bin/python3 with numpy.
set -euo pipefail
cd "$(dirname "$0")/.."
TQ=${TQ:-build/cpu/tq}
out=docs/quality
mkdir -p "$out"

bash scripts/fetch_glove.sh >/dev/null
[ -f data/kv/stories_all.safetensors ] || /usr/bin/python3 scripts/dump_kv_stories.py
for D in 64 128; do
  [ -f "data/kv/synth_d$D.safetensors" ] || /usr/bin/python3 scripts/gen_synthetic_kv.py --D "$D"
done

# Key-only / value-only lists: the other side stays fp16, so KLD isolates the keys.
keys_only() { local o=""; for c in "$@"; do o+="${o:+,}k=$c,v=fp16"; done; echo "$o"; }
vals_only() { local o=""; for c in "$@"; do o+="${o:+,}k=fp16,v=$c"; done; echo "$o"; }
KC=(fp8 q8 q8r q4 q4r kivi2 tq5 tq4 tq3.5 tq3 tq2.5 tq2 tq5p tq4p tq3p)
KCC=(q8r q4r tq5 tq4 tq3.5 tq3 tq2.5 tq4p tq3p)  # centered keys (prefix mean)
VC=(fp8 q8r q4 q4r kivi2 tq4 tq3.5 tq3 tq2.5 tq2 tq4p tq3p)
MIX="k=tq4,v=tq4,k=tq4,v=tq3,k=tq3,v=tq4,k=tq3,v=tq3,k=tq4,v=tq2.5,k=tq5,v=tq3,k=q4r,v=tq3,k=q4r,v=q4r,k=kivi2,v=tq3,k=q8r,v=tq3"

declare -A CMD
CMD[random_d128]="--random 20000 --dim 128 --codecs fp16,fp8,q8,q8r,q4,q4r,kivi2,tq1,tq2,tq3,tq4,tq2.5,tq3.5,tq2p,tq3p,tq4p"
CMD[glove100]="--vectors data/glove100.npy"
for D in 64 128; do
  CMD[synth_d$D]="--qkv data/kv/synth_d$D.safetensors --plot-metric attn_rel_l2"
  CMD[synth_d${D}_keys]="--qkv data/kv/synth_d$D.safetensors --codecs $(keys_only "${KC[@]}") --plot-x k_bits"
  CMD[synth_d${D}_values]="--qkv data/kv/synth_d$D.safetensors --codecs $(vals_only "${VC[@]}") --plot-x v_bits --plot-metric attn_rel_l2"
  CMD[synth_d${D}_mixed]="--qkv data/kv/synth_d$D.safetensors --codecs $MIX --plot-metric attn_rel_l2"
  CMD[synth_d${D}_kivi_nowindow]="--qkv data/kv/synth_d$D.safetensors --codecs kivi2,k=kivi2,v=fp16 --kivi-window 0"
done
CMD[synth_d128_keys_centered]="--qkv data/kv/synth_d128.safetensors --codecs $(keys_only "${KCC[@]}") --plot-x k_bits --center-keys 128"
CMD[stories_all]="--qkv data/kv/stories_all.safetensors --plot-metric attn_rel_l2"
CMD[stories_all_keys_centered]="--qkv data/kv/stories_all.safetensors --codecs $(keys_only "${KCC[@]}") --plot-x k_bits --center-keys 32"
CMD[stories_all_keys]="--qkv data/kv/stories_all.safetensors --codecs $(keys_only "${KC[@]}") --plot-x k_bits"
CMD[stories_all_values]="--qkv data/kv/stories_all.safetensors --codecs $(vals_only "${VC[@]}") --plot-x v_bits --plot-metric attn_rel_l2"
CMD[stories_all_kivi_nowindow]="--qkv data/kv/stories_all.safetensors --codecs kivi2,k=kivi2,v=fp16 --kivi-window 0"
for L in 0 1 2 3 4; do
  CMD[stories_L$L]="--qkv data/kv/stories_L$L.safetensors --codecs q8r,q4,q4r,kivi2,tq4,tq3,tq2.5,tq4p,tq3p"
done

names=("$@")
[ ${#names[@]} -gt 0 ] || names=($(printf '%s\n' "${!CMD[@]}" | sort))
for n in "${names[@]}"; do
  [ -n "${CMD[$n]+x}" ] || { echo "unknown figure '$n'" >&2; exit 1; }
  echo "tq eval ${CMD[$n]}" > "$out/$n.cmd"
  # shellcheck disable=SC2086
  "$TQ" eval ${CMD[$n]} --json --no-progress --plot "$out/$n.svg" --title "$n" > "$out/$n.json"
  echo "$n done"
done
/usr/bin/python3 scripts/quality_tables.py "$out" > "$out/tables.md"
