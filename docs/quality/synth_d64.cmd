tq eval --qkv data/kv/synth_d64.safetensors --plot-metric attn_rel_l2
