# Part B: UNets trained from scratch on MNIST.
# Training is a chain of one-epoch jobs (epoch_{e-1}.pt -> epoch_{e}.pt): an interrupted run resumes at
# the last completed epoch. Chain checkpoints are temporary; those at grid/evaluation epochs are kept.


wildcard_constraints:
    kind="denoiser|time|class",
    ddpm="time|class",
    epoch="[0-9]+",


rule train_init:
    output:
        temp("results/part_b/{kind}/ckpt/epoch_0.pt"),
    params:
        settings=train_settings,
    log:
        "results/logs/train/{kind}_epoch_0.log",
    shell:
        "{DIFFLAB} train --model {wildcards.kind} --epoch 0 --settings {params.settings:q} --out {output} > {log} 2>&1"


def previous_checkpoint(wildcards):
    return f"results/part_b/{wildcards.kind}/ckpt/epoch_{int(wildcards.epoch) - 1}.pt"


rule train_epoch:
    input:
        previous=previous_checkpoint,
        data=MNIST,
    output:
        temp("results/part_b/{kind}/ckpt/epoch_{epoch,[1-9][0-9]*}.pt"),
    params:
        settings=train_settings,
    log:
        "results/logs/train/{kind}_epoch_{epoch}.log",
    benchmark:
        "results/benchmarks/train/{kind}_epoch_{epoch}.tsv"
    threads: ALL_CORES
    resources:
        gpu=1,
    shell:
        "{DIFFLAB} train --model {wildcards.kind} --epoch {wildcards.epoch} --previous {input.previous}"
        " --data {input.data} --settings {params.settings:q} --out {output} 2>&1 | tee {log}"


rule keep_checkpoint:
    input:
        "results/part_b/{kind}/ckpt/epoch_{epoch}.pt",
    output:
        "results/part_b/{kind}/epoch_{epoch}.pt",
    shell:
        "cp {input} {output}.partial && mv {output}.partial {output}"






rule sample_for_fid:
    input:
        checkpoint="results/part_b/{ddpm}/epoch_{epoch}.pt",
    output:
        "results/part_b/{ddpm}/samples/epoch_{epoch}.npz",
    params:
        settings=settings_json(PB, profile=PROFILE),
        n=PB["fid"]["num_images"],
    log:
        "results/logs/part_b/sample_{ddpm}_epoch_{epoch}.log",
    benchmark:
        "results/benchmarks/part_b/sample_{ddpm}_epoch_{epoch}.tsv"
    threads: 1
    resources:
        gpu=1,
    shell:
        "{DIFFLAB} partb sample --checkpoint {input.checkpoint} --n {params.n}"
        " --settings {params.settings:q} --out {output} 2>&1 | tee {log}"


rule sample_cfg_sweep:
    input:
        checkpoint=final_checkpoint("class"),
    output:
        "results/part_b/cfg/guidance_{guidance}.npz",
    params:
        settings=settings_json(PB, profile=PROFILE),
        n=PB["fid"]["cfg_sweep_num_images"],
    log:
        "results/logs/part_b/sample_cfg_{guidance}.log",
    benchmark:
        "results/benchmarks/part_b/sample_cfg_{guidance}.tsv"
    threads: 1
    resources:
        gpu=1,
    shell:
        "{DIFFLAB} partb sample --checkpoint {input.checkpoint} --n {params.n} --guidance {wildcards.guidance}"
        " --settings {params.settings:q} --out {output} 2>&1 | tee {log}"
