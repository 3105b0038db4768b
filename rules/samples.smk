# Samples: DDPM samples for FID at every evaluation epoch (Algorithms B.2 / B.4) and the class model's samples at
# every guidance scale of the CFG sweep, as npz files (images, labels, guidance, epoch, seed).
# {weights} is "" for the raw weights (epoch_{e}.npz, the writeup's) and "_ema" for their moving average
# (epoch_{e}_ema.npz): same settings, same seeds, same n; only the checkpoint's weight set differs.


wildcard_constraints:
    weights="|_ema",


def sample_settings(wildcards):
    return settings_json(f"samples.{wildcards.ddpm}")


def sample_weights(wildcards):
    """The --weights of a samples file: its {weights} suffix "" -> raw, "_ema" -> ema."""
    return wildcards.weights.removeprefix("_") or "raw"


def cfg_guidance(wildcards):
    return CFG_SCALES[wildcards.guidance]


rule sample_for_fid:
    input:
        checkpoint="results/models/{ddpm}/epoch_{epoch}.pt",
    output:
        "results/samples/{ddpm}/epoch_{epoch}{weights}.npz",
    params:
        settings=sample_settings,
        weights=sample_weights,
    log:
        "results/logs/samples/{ddpm}_epoch_{epoch}{weights}.log",
    benchmark:
        "results/benchmarks/samples/{ddpm}_epoch_{epoch}{weights}.tsv"
    threads: 1
    resources:
        gpu=1,
    shell:
        "{DIFFLAB} sample --job samples.{wildcards.ddpm} --checkpoint {input.checkpoint}"
        " --weights {params.weights} --settings {params.settings:q} --out {output} > {log} 2>&1"


rule sample_cfg_sweep:
    input:
        checkpoint=final_checkpoint("class"),
    output:
        "results/samples/cfg/guidance_{guidance}.npz",
    params:
        settings=settings_json("samples.cfg_sweep"),
        guidance=cfg_guidance,
    log:
        "results/logs/samples/cfg_guidance_{guidance}.log",
    benchmark:
        "results/benchmarks/samples/cfg_guidance_{guidance}.tsv"
    threads: 1
    resources:
        gpu=1,
    shell:
        "{DIFFLAB} sample --job samples.cfg_sweep --checkpoint {input.checkpoint} --guidance {params.guidance}"
        " --settings {params.settings:q} --out {output} > {log} 2>&1"
