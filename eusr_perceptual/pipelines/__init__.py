"""What runs a whole job from a configuration: EUSR pre-training (:mod:`.pretrain_run`), a GAN
run with its PSNR stage (:mod:`.gan_run`), a study of presets (:mod:`.study`), the 4PP-EUSR demo
chain (:mod:`.fourpp_demo`, :mod:`.score_trees`) and the final evaluation table of a run
(:mod:`.final_table`). The command line calls these; they call trainers, serving and evaluation."""
