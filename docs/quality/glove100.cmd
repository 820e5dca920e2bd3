tq eval --vectors data/glove100.npy
