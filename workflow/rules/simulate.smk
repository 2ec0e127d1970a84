# Stage 1: GalSim simulations, one job per shard (many stamps per file, never a file per image).
#
# Shards are a plain expand over sims.<dataset>.shards rather than scattergather: the shard count
# is part of each dataset's recipe in config (scattergather counts are global and can be changed
# from the command line with --set-scatter, which would change the data without changing config).


rule simulate:
    input:
        lib=lambda wc: recipe_lib(wc.dataset),
    output:
        npz="results/sims/{dataset}/shard{shard}.npz",
        parquet="results/sims/{dataset}/shard{shard}.parquet",
    log:
        "results/logs/simulate/{dataset}/shard{shard}.log",
    benchmark:
        "results/benchmarks/simulate/{dataset}/shard{shard}.tsv"
    wildcard_constraints:
        shard=r"\d{4}",
        dataset=r"[a-z][a-z0-9_]*",
    conda:
        "../envs/deepsky.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        recipe=lambda wc: recipe(wc.dataset),
        seed=config["seed"],
    script:
        "../../scripts/simulate.py"
