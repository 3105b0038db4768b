# The DeepFloyd IF backend's models-stage jobs (only with part_a.backend: deepfloyd): the T5 prompt embeddings (only
# when part_a.deepfloyd.prompt_embeds is "", else the given dict is used and T5 is never loaded) and the backend file
# every Part A job loads as its checkpoint. Weights are never downloaded: difflab.workflow checks them before any job.

DEEPFLOYD = config["part_a"]["deepfloyd"]
DEEPFLOYD_EMBEDS = DEEPFLOYD["prompt_embeds"] or "results/models/deepfloyd/prompt_embeds.pt"
DEEPFLOYD_BACKEND = "results/models/deepfloyd/backend.json"

localrules: deepfloyd_backend


rule deepfloyd_prompt_embeds:
    output:
        "results/models/deepfloyd/prompt_embeds.pt",
    params:
        settings=settings_json("models.deepfloyd_embeds"),
    log:
        "results/logs/models/deepfloyd_prompt_embeds.log",
    benchmark:
        "results/benchmarks/models/deepfloyd_prompt_embeds.tsv"
    threads: 1
    resources:
        gpu=1,
    shell:
        "{DIFFLAB} deepfloyd embed --settings {params.settings:q} --out {output} > {log} 2>&1"


rule deepfloyd_backend:
    input:
        embeds=DEEPFLOYD_EMBEDS,
    output:
        DEEPFLOYD_BACKEND,
    params:
        settings=settings_json("models.deepfloyd_backend"),
    log:
        "results/logs/models/deepfloyd_backend.log",
    shell:
        "{DIFFLAB} deepfloyd backend --settings {params.settings:q} --embeds {input.embeds:q} --out {output} > {log} 2>&1"
