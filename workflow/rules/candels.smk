# Live CANDELS target (transfer.target: candels): van der Wel+12 GALFIT sizes from VizieR and
# stamps cut from an F160W mosaic, written in the same shard format as the simulations.
# Network rules run on the submitting host (compute nodes often lack internet), are retried (per
# request by deepsky.archives.net, settings candels.http read by the scripts; once more as a whole
# here) and rate-limited (--resources vizier_requests=1), and cache what they fetch under
# resources/candels/ apart from their outputs, so a rerun after a code change asks nothing again.


# results/sims/candels/shard*.npz would also match rule simulate's {dataset} pattern.
ruleorder: candels_cutouts > simulate


rule candels_catalogue:
    input:
        lib=script_lib("candels_catalogue"),
    output:
        candels_catalogue_path(),
    log:
        "results/logs/candels/catalogue.log",
    retries: 2
    localrule: True
    conda:
        "../envs/deepsky.yaml"
    resources:
        vizier_requests=1,
        runtime=30,
    params:
        catalog=config["candels"]["catalog"],
        server=config["candels"]["server"],
        vizier_cache="resources/candels/vizier",
    script:
        "../../scripts/candels_catalogue.py"


rule candels_mosaic:
    input:
        lib=script_lib("candels_mosaic"),
    output:
        "resources/candels/mosaic/{name}",
    log:
        "results/logs/candels/mosaic_{name}.log",
    retries: 1
    localrule: True
    conda:
        "../envs/deepsky.yaml"
    resources:
        mast_requests=1,
        runtime=120,
    params:
        url=lambda wc: candels_mosaic_url(wc.name),
        sha256=config["candels"]["mosaic_sha256"],
        cache_dir="resources/candels/cache",
    script:
        "../../scripts/candels_mosaic.py"


rule candels_cutouts:
    input:
        catalogue=candels_catalogue_path(),
        mosaic=lambda wc: candels_mosaic_path(),
        lib=script_lib("candels_cutouts"),
    output:
        npz="results/sims/candels/shard{shard}.npz",
        parquet="results/sims/candels/shard{shard}.parquet",
    log:
        "results/logs/candels/cutouts/shard{shard}.log",
    benchmark:
        "results/benchmarks/candels/cutouts/shard{shard}.tsv"
    wildcard_constraints:
        shard=r"\d{4}",
    conda:
        "../envs/deepsky.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        cfg=canonical(config["candels"]),
    script:
        "../../scripts/candels_cutouts.py"
