# Star/galaxy separation: split and train are the generic rules of train.smk; evaluation has its own
# outputs (ROC, purity/completeness vs magnitude, reliability, misclassified stamps) and compares the
# model with the SDSS catalogue baseline psfMag - cModelMag (r). Same script, dispatching on the task.


ruleorder: evaluate_stargal > evaluate


rule evaluate_stargal:
    input:
        npz=task_shards("npz"),
        parquet=task_shards("parquet"),
        split="results/{task}/split.parquet",
        model="results/{task}/models/{model}.keras",
        history="results/{task}/models/{model}.history.parquet",
        lib=script_lib("evaluate"),
    output:
        metrics="results/{task}/metrics/{model}.json",
        predictions="results/{task}/predictions/{model}.parquet",
        timing="results/benchmarks/evaluate/{task}/{model}.timing.json",
        roc=report(
            "results/{task}/plots/{model}/roc.png",
            caption="../report/stargal_roc.rst",
            category="{task}",
            subcategory="{model}",
        ),
        purity_completeness=report(
            "results/{task}/plots/{model}/purity_completeness.png",
            caption="../report/stargal_purity_completeness.rst",
            category="{task}",
            subcategory="{model}",
        ),
        reliability=report(
            "results/{task}/plots/{model}/reliability.png",
            caption="../report/stargal_reliability.rst",
            category="{task}",
            subcategory="{model}",
        ),
        misclassified=report(
            "results/{task}/plots/{model}/misclassified.png",
            caption="../report/stargal_misclassified.rst",
            category="{task}",
            subcategory="{model}",
        ),
        learning_curves=report(
            "results/{task}/plots/{model}/learning_curves.png",
            caption="../report/stargal_learning_curves.rst",
            category="{task}",
            subcategory="{model}",
        ),
    log:
        "results/logs/evaluate/{task}/{model}.log",
    benchmark:
        "results/benchmarks/evaluate/{task}/{model}.tsv"
    wildcard_constraints:
        task="stargal",
    conda:
        "../envs/deepsky.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        **stargal_params(),
        seed=config["seed"],
        # (architecture, options, training config): quoted in the report's figure captions
        model_config=lambda wc: canonical(
            [model_arch(wc.model), model_options(wc.model), task_train(wc.task)]
        ),
    script:
        "../../scripts/evaluate.py"
