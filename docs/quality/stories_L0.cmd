tq eval --qkv data/kv/stories_L0.safetensors --codecs q8r,q4,q4r,kivi2,tq4,tq3,tq2.5,tq4p,tq3p
