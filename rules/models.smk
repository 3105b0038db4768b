# Models: the three UNets of Part B trained from scratch on MNIST, and the MNIST classifier (FID features, class
# accuracy). Training is a chain of one-epoch jobs (chain/epoch_{e-1}.pt -> chain/epoch_{e}.pt): an interrupted
# run resumes at the last completed epoch. Chain checkpoints are temporary; those at grid/evaluation epochs and the
# last one are kept as results/models/{kind}/epoch_{e}.pt.


wildcard_constraints:
    kind="denoiser|time|class",
    ddpm="time|class",
    epoch="[0-9]+",


localrules:
    keep_checkpoint,


def train_settings(wildcards):
    return settings_json(f"models.train_{wildcards.kind}")


def previous_checkpoint(wildcards):
    return f"results/models/{wildcards.kind}/chain/epoch_{int(wildcards.epoch) - 1}.pt"


rule train_init:
    output:
        temp("results/models/{kind}/chain/epoch_0.pt"),
    params:
        settings=train_settings,
    log:
        "results/logs/models/{kind}_epoch_0.log",
    shell:
        "{DIFFLAB} train --model {wildcards.kind} --epoch 0 --settings {params.settings:q} --out {output} > {log} 2>&1"


rule train_epoch:
    input:
        previous=previous_checkpoint,
        data=MNIST,
    output:
        temp("results/models/{kind}/chain/epoch_{epoch,[1-9][0-9]*}.pt"),
    params:
        settings=train_settings,
    log:
        "results/logs/models/{kind}_epoch_{epoch}.log",
    benchmark:
        "results/benchmarks/models/{kind}_epoch_{epoch}.tsv"
    threads: TRAIN_THREADS
    resources:
        gpu=1,
    shell:
        "{DIFFLAB} train --model {wildcards.kind} --epoch {wildcards.epoch} --previous {input.previous}"
        " --data {input.data} --settings {params.settings:q} --out {output} > {log} 2>&1"


rule keep_checkpoint:
    input:
        "results/models/{kind}/chain/epoch_{epoch}.pt",
    output:
        "results/models/{kind}/epoch_{epoch}.pt",
    log:
        "results/logs/models/keep_{kind}_epoch_{epoch}.log",
    shell:
        "(cp {input} {output}.partial && mv {output}.partial {output}) > {log} 2>&1"


rule classifier:
    input:
        data=MNIST,
    output:
        checkpoint=CLASSIFIER,
        metrics="results/metrics/classifier.csv",
    params:
        settings=settings_json("models.classifier"),
    log:
        "results/logs/models/classifier.log",
    benchmark:
        "results/benchmarks/models/classifier.tsv"
    threads: ALL_CORES
    resources:
        gpu=1,
    shell:
        "{DIFFLAB} metrics train-classifier --data {input.data} --settings {params.settings:q}"
        " --out {output.checkpoint} --metrics-out {output.metrics} > {log} 2>&1"
