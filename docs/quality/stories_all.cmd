tq eval --qkv data/kv/stories_all.safetensors --plot-metric attn_rel_l2
