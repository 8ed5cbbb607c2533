# Checks the local GPU cap of rules/common.smk (tests/test_slurm.py::test_local_gpu_cap).
# Each job asks for `want` GPUs, records what Snakemake granted it and how many jobs
# held GPUs at the same time (marker files in running/).

include: "../../rules/common.smk"


rule all:
    input:
        expand("granted/{i}.txt", i=range(4)),


rule use_gpu:
    output:
        "granted/{i}.txt",
    resources:
        gpu=int(config.get("want", 1)),
    shell:
        "mkdir -p running; touch running/{wildcards.i}; sleep 1; "
        "echo \"gpu={resources.gpu} concurrent=$(ls running | wc -l)\" > {output}; "
        "rm running/{wildcards.i}"
