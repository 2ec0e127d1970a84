# `deepsky predict` as a rule: config `predict: {name: {model, images, catalogue | stamps, ...}}`
# makes results/predict/{name}.parquet (see README "Predicting on your own images").


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
