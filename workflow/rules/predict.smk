# `deepsky predict` as rules: config `predict: {name: {model, images, catalogue | stamps, ...}}`.
#   results/predict/{name}.parquet        one job, one file (see README "Predicting on your own images")
#   results/predict/{name}/manifest.json  survey scale: the catalogue cut into sky tiles
#       (results/predict/{name}/tiles/), one job per tile writing a partitioned Parquet dataset
#       (results/predict/{name}/parts/<tile>/part-NNNNN.parquet), and a gather that checks every
#       catalogue row was predicted once. The number of tiles: --set-scatter predict_tile=N.


scattergather:
    predict_tile=8,


rule predict:
    input:
        unpack(predict_inputs),
        lib=script_lib("predict"),
    output:
        "results/predict/{name}.parquet",
    log:
        "results/logs/predict/{name}.log",
    benchmark:
        "results/benchmarks/predict/{name}.tsv"
    wildcard_constraints:
        name=PREDICT_NAME,
    conda:
        "../envs/deepsky.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        job=lambda wc: canonical(predict_job(wc.name)),
    script:
        "../../scripts/predict.py"


rule predict_split:
    input:
        unpack(predict_split_input),
        lib=script_lib("predict_tiles"),
    output:
        scatter.predict_tile("results/predict/{{name}}/tiles/{scatteritem}.parquet"),
    log:
        "results/logs/predict/{name}/split.log",
    wildcard_constraints:
        name=PREDICT_NAME,
    conda:
        "../envs/deepsky.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        job=lambda wc: canonical(predict_tiled_job(wc.name)),
    script:
        "../../scripts/predict_tiles.py"


rule predict_tile:
    input:
        unpack(predict_tile_inputs),
        tile="results/predict/{name}/tiles/{scatteritem}.parquet",
        lib=script_lib("predict"),
    output:
        directory("results/predict/{name}/parts/{scatteritem}"),
    log:
        "results/logs/predict/{name}/{scatteritem}.log",
    benchmark:
        "results/benchmarks/predict/{name}/{scatteritem}.tsv"
    wildcard_constraints:
        name=PREDICT_NAME,
    conda:
        "../envs/deepsky.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=240,
    params:
        job=lambda wc: canonical(predict_tiled_job(wc.name)),
        # parts of an interrupted job, reused when snakemake reruns it (hidden: not a result)
        scratch=lambda wc: f"results/predict/{wc.name}/.scratch/{wc.scatteritem}",
    script:
        "../../scripts/predict.py"


rule predict_gather:
    input:
        tiles=gather.predict_tile(
            "results/predict/{{name}}/tiles/{scatteritem}.parquet"
        ),
        parts=gather.predict_tile("results/predict/{{name}}/parts/{scatteritem}"),
        lib=script_lib("predict_gather"),
    output:
        "results/predict/{name}/manifest.json",
    log:
        "results/logs/predict/{name}/gather.log",
    wildcard_constraints:
        name=PREDICT_NAME,
    localrule: True
    conda:
        "../envs/deepsky.yaml"
    script:
        "../../scripts/predict_gather.py"
