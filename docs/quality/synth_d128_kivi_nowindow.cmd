tq eval --qkv data/kv/synth_d128.safetensors --codecs kivi2,k=kivi2,v=fp16 --kivi-window 0
