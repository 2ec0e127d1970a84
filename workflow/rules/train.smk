# Stage 2-4: split -> train (GPU if there is one) -> evaluate on the held-out test split.


rule split:
    input:
        parquet=task_shards("parquet"),
        lib=script_lib("split"),
    output:
        "results/{task}/split.parquet",
    log:
        "results/logs/split/{task}.log",
    conda:
        "../envs/deepsky.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        fractions=lambda wc: task_config(wc.task)["split"],
        seed=config["seed"],
    script:
        "../../scripts/split.py"


rule train:
    input:
        npz=task_shards("npz"),
        parquet=task_shards("parquet"),
        split="results/{task}/split.parquet",
        lib=script_lib("train"),
    output:
        model="results/{task}/models/{model}.keras",
        meta="results/{task}/models/{model}.json",
        history="results/{task}/models/{model}.history.parquet",
        timing="results/benchmarks/train/{task}/{model}.timing.json",
    log:
        "results/logs/train/{task}/{model}.log",
    benchmark:
        "results/benchmarks/train/{task}/{model}.tsv"
    conda:
        "../envs/deepsky.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=120,
    params:
        task_cfg=lambda wc: task_config(wc.task),
        recipe=lambda wc: task_recipe(wc.task),
        model_name=lambda wc: model_arch(wc.model),
        model_opts=lambda wc: model_options(wc.model),
        # study models (study/variant~V/fraction~F) carry their own training overrides
        train_cfg=lambda wc: (
            model_train_config(wc.model)
            if deepsky_study.parse_model_name(wc.model)
            else task_train(wc.task)
        ),
        seed=config["seed"],
        # resumable epoch checkpoints: undeclared scratch, removed when the job succeeds
        scratch=lambda wc: f"results/.scratch/train/{wc.task}/{wc.model}",
    script:
        "../../scripts/train.py"


rule evaluate:
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
        pred_vs_true=report(
            "results/{task}/plots/{model}/pred_vs_true.png",
            caption="../report/pred_vs_true.rst",
            category="{task}",
            subcategory="{model}",
        ),
        residuals=report(
            "results/{task}/plots/{model}/residuals.png",
            caption="../report/residuals.rst",
            category="{task}",
            subcategory="{model}",
        ),
        learning_curves=report(
            "results/{task}/plots/{model}/learning_curves.png",
            caption="../report/learning_curves.rst",
            category="{task}",
            subcategory="{model}",
        ),
        gallery=report(
            "results/{task}/plots/{model}/gallery.png",
            caption="../report/gallery.rst",
            category="{task}",
            subcategory="{model}",
        ),
    log:
        "results/logs/evaluate/{task}/{model}.log",
    benchmark:
        "results/benchmarks/evaluate/{task}/{model}.tsv"
    conda:
        "../envs/deepsky.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        seed=config["seed"],
        # (architecture, options, training config): quoted in the report's figure captions
        model_config=lambda wc: canonical(list(resolve_model(wc.model))),
    script:
        "../../scripts/evaluate.py"
