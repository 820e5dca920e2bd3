tq eval --qkv data/kv/stories_all.safetensors --codecs kivi2,k=kivi2,v=fp16 --kivi-window 0
