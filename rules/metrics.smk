# Metrics: an MNIST classifier trained in the pipeline (FID features, class accuracy), FID per
# evaluation epoch and per guidance scale, and the real-vs-real floor. Tidy CSVs in results/metrics/.

CLASSIFIER = "results/classifier/classifier.pt"


rule classifier:
    input:
        data=MNIST,
    output:
        checkpoint=CLASSIFIER,
        metrics="results/metrics/classifier.csv",
    params:
        settings=settings_json(PB["classifier"], train_subset=config["data"]["train_subset"]),
    log:
        "results/logs/metrics/classifier.log",
    benchmark:
        "results/benchmarks/metrics/classifier.tsv"
    threads: ALL_CORES
    resources:
        gpu=1,
    shell:
        "{DIFFLAB} metrics train-classifier --data {input.data} --settings {params.settings:q}"
        " --out {output.checkpoint} --metrics-out {output.metrics} 2>&1 | tee {log}"


rule fid_epoch:
    input:
        data=MNIST,
        classifier=CLASSIFIER,
        samples="results/part_b/{ddpm}/samples/epoch_{epoch}.npz",
    output:
        "results/metrics/fid/{ddpm}_epoch_{epoch}.csv",
    params:
        settings=settings_json(PB["fid"]),
        parameter=lambda w: f"guidance={fmt_number(PB['ddpm']['guidance_scale'])}" if w.ddpm == "class" else "",
    log:
        "results/logs/metrics/fid_{ddpm}_epoch_{epoch}.log",
    benchmark:
        "results/benchmarks/metrics/fid_{ddpm}_epoch_{epoch}.tsv"
    threads: 1
    shell:
        "{DIFFLAB} metrics fid --data {input.data} --classifier {input.classifier} --samples {input.samples}"
        " --experiment ddpm_{wildcards.ddpm} --model {wildcards.ddpm} --epoch {wildcards.epoch}"
        " --parameter '{params.parameter}' --settings {params.settings:q} --out {output} > {log} 2>&1"


rule fid_cfg_sweep:
    input:
        data=MNIST,
        classifier=CLASSIFIER,
        samples="results/part_b/cfg/guidance_{guidance}.npz",
    output:
        "results/metrics/fid/cfg_guidance_{guidance}.csv",
    params:
        settings=settings_json(PB["fid"]),
        epoch=final_epoch("class"),
    log:
        "results/logs/metrics/fid_cfg_{guidance}.log",
    benchmark:
        "results/benchmarks/metrics/fid_cfg_{guidance}.tsv"
    threads: 1
    shell:
        "{DIFFLAB} metrics fid --data {input.data} --classifier {input.classifier} --samples {input.samples}"
        " --experiment cfg_sweep --model class --epoch {params.epoch} --parameter guidance={wildcards.guidance}"
        " --settings {params.settings:q} --out {output} > {log} 2>&1"


rule fid_floor:
    input:
        data=MNIST,
        classifier=CLASSIFIER,
    output:
        "results/metrics/fid/floor.csv",
    params:
        n=PB["fid"]["real_floor_num_images"],
    log:
        "results/logs/metrics/fid_floor.log",
    threads: 1
    shell:
        "{DIFFLAB} metrics real-floor --data {input.data} --classifier {input.classifier} --n {params.n}"
        " --out {output} > {log} 2>&1"


def fid_tables(wildcards=None):
    per_epoch = [f"results/metrics/fid/{kind}_epoch_{e}.csv" for kind in ("time", "class") for e in kept_epochs(kind)]
    return per_epoch + ["results/metrics/fid/floor.csv", "results/metrics/classifier.csv"]
