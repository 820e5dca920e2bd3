tq eval --qkv data/kv/synth_d128.safetensors --plot-metric attn_rel_l2
