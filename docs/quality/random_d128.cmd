tq eval --random 20000 --dim 128 --codecs fp16,fp8,q8,q8r,q4,q4r,kivi2,tq1,tq2,tq3,tq4,tq2.5,tq3.5,tq2p,tq3p,tq4p
