# Metrics: FID (with KID beside it) and class accuracy of every samples file against as many MNIST test images,
# with the pipeline's MNIST classifier as feature extractor, and the real-vs-real floor. FID per epoch of the EMA
# weights: experiment ddpm_<model>_ema in results/metrics/fid/<model>_epoch_<e>_ema.csv. Tidy CSVs in
# results/metrics/ (difflab.metrics.tables). Model, epoch and guidance scale are read from the samples file.


rule fid_epoch:
    input:
        data=MNIST,
        classifier=CLASSIFIER,
        samples="results/samples/{ddpm}/epoch_{epoch}{weights}.npz",
    output:
        fid_csv("{ddpm}_epoch_{epoch}{weights}"),
    params:
        settings=settings_json("metrics.fid"),
    log:
        "results/logs/metrics/fid_{ddpm}_epoch_{epoch}{weights}.log",
    benchmark:
        "results/benchmarks/metrics/fid_{ddpm}_epoch_{epoch}{weights}.tsv"
    threads: 1
    shell:
        "{DIFFLAB} metrics fid --data {input.data} --classifier {input.classifier} --samples {input.samples}"
        " --experiment ddpm_{wildcards.ddpm}{wildcards.weights} --settings {params.settings:q} --out {output} > {log} 2>&1"


rule fid_cfg_sweep:
    input:
        data=MNIST,
        classifier=CLASSIFIER,
        samples="results/samples/cfg/guidance_{guidance}.npz",
    output:
        fid_csv("cfg_guidance_{guidance}"),
    params:
        settings=settings_json("metrics.fid"),
    log:
        "results/logs/metrics/fid_cfg_guidance_{guidance}.log",
    benchmark:
        "results/benchmarks/metrics/fid_cfg_guidance_{guidance}.tsv"
    threads: 1
    shell:
        "{DIFFLAB} metrics fid --data {input.data} --classifier {input.classifier} --samples {input.samples}"
        " --experiment cfg_sweep --settings {params.settings:q} --out {output} > {log} 2>&1"


rule fid_floor:
    input:
        data=MNIST,
        classifier=CLASSIFIER,
    output:
        fid_csv("floor"),
    params:
        settings=settings_json("metrics.fid_floor"),
    log:
        "results/logs/metrics/fid_floor.log",
    threads: 1
    shell:
        "{DIFFLAB} metrics real-floor --data {input.data} --classifier {input.classifier}"
        " --settings {params.settings:q} --out {output} > {log} 2>&1"


def fid_tables(wildcards=None):
    """The metric CSVs the FID summary reads: FID per evaluation epoch of both DDPMs, the floor, the classifier."""
    per_epoch = [fid_csv(f"{kind}_epoch_{e}") for kind in ("time", "class") for e in kept_epochs(kind)]
    return per_epoch + [fid_csv("floor"), "results/metrics/classifier.csv"]


def ema_fid_tables(wildcards=None):
    """The metric CSVs the EMA comparison reads: raw and EMA FID per evaluation epoch of both DDPMs."""
    return [fid_csv(f"{kind}_epoch_{e}{weights}") for kind in ("time", "class") for e in kept_epochs(kind)
            for weights in ("", "_ema")]
