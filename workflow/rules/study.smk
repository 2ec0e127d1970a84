# Model study: variants x training-set fractions (a Paramspace over config.study), each trained and
# evaluated by the ordinary train/evaluate rules under the model name study/variant~V/fraction~F;
# a classic Sersic-fit baseline; Gaussian-head calibration; the leaderboard.  `snakemake study`.
from snakemake.utils import Paramspace

STUDY_TASK = "size"


# Study model names hold slashes (study/variant~V/fraction~F): keep {task} to one path component so
# results/benchmarks/train/{task}/{model}.timing.json cannot split a model name into the task.
wildcard_constraints:
    task=r"[a-z][a-z0-9_]*",


STUDY = (
    Paramspace(
        deepsky_study.variant_frame(config["study"]), filename_params=["fraction"]
    )
    if config["study"]["variants"]
    else None
)


rule sersic_baseline:
    input:
        npz=shard_files(task_dataset(STUDY_TASK), "npz"),
        parquet=shard_files(task_dataset(STUDY_TASK), "parquet"),
        split=f"results/{STUDY_TASK}/split.parquet",
        lib=script_lib("sersic_baseline"),
    output:
        fits="results/study/baseline/sersic_fits.parquet",
        summary="results/study/baseline/sersic.json",
    log:
        "results/logs/study/sersic_baseline.log",
    benchmark:
        "results/benchmarks/study/sersic_baseline.tsv"
    conda:
        "../envs/deepsky.yaml"
    # each fit runs on one core (numpy/scipy); the job holds two so that no other job shares a
    # laptop's CPU while the fits are timed (the speed-up compares these clocks with study_speed's)
    threads: 2
    resources:
        mem_mb=2000,
        runtime=120,
    params:
        recipe=recipe(task_dataset(STUDY_TASK)),
        n=config["study"]["baseline"]["n"],
        max_nfev=config["study"]["baseline"]["max_nfev"],
        seed=config["seed"],
    script:
        "../../scripts/sersic_baseline.py"


rule study_speed:
    input:
        models=lambda wc: study_files("results/{task}/models/{model}.keras"),
        npz=shard_files(task_dataset(STUDY_TASK), "npz"),
        parquet=shard_files(task_dataset(STUDY_TASK), "parquet"),
        split=f"results/{STUDY_TASK}/split.parquet",
        lib=script_lib("study_speed"),
    output:
        "results/benchmarks/study/speed.parquet",
    log:
        "results/logs/study/speed.log",
    conda:
        "../envs/deepsky.yaml"
    threads: 2  # computes on study.baseline.threads; holds two so that nothing runs beside the clock
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        names=lambda wc: study_models(),
        threads=config["study"]["baseline"]["threads"],
        stamps=config["study"]["baseline"]["speed_stamps"],
        repeats=config["study"]["baseline"]["repeats"],
    script:
        "../../scripts/study_speed.py"


rule calibration:
    input:
        predictions=f"results/{STUDY_TASK}/predictions/study/variant~{{variant}}/fraction~{{fraction}}.parquet",
        model=f"results/{STUDY_TASK}/models/study/variant~{{variant}}/fraction~{{fraction}}.keras",
        npz=shard_files(task_dataset(STUDY_TASK), "npz"),
        parquet=shard_files(task_dataset(STUDY_TASK), "parquet"),
        split=f"results/{STUDY_TASK}/split.parquet",
        lib=script_lib("calibration"),
    output:
        json="results/study/calibration/{variant}/fraction~{fraction}.json",
        plot=report(
            "results/study/calibration/{variant}/fraction~{fraction}.png",
            caption="../report/calibration.rst",
            category="study",
            subcategory="uncertainty",
        ),
    log:
        "results/logs/study/calibration/{variant}/fraction~{fraction}.log",
    conda:
        "../envs/deepsky.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        snr_edges=config["study"]["calibration"]["snr_edges"],
    script:
        "../../scripts/calibration.py"


rule study_leaderboard:
    input:
        metrics=lambda wc: study_files("results/{task}/metrics/{model}.json"),
        train_timing=lambda wc: study_files(
            "results/benchmarks/train/{task}/{model}.timing.json"
        ),
        speed=rules.study_speed.output[0],
        calibration=lambda wc: study_calibration_files(),
        stargal=lambda wc: [
            f"results/stargal/metrics/{m}.json" for m in study_stargal_models()
        ],
        baseline="results/study/baseline/sersic.json",
        fits="results/study/baseline/sersic_fits.parquet",
        compared=lambda wc: [
            f"results/{STUDY_TASK}/predictions/{m}.parquet"
            for m in study_compared_models()
        ],
        lib=script_lib("study_leaderboard"),
    output:
        parquet="results/study/leaderboard.parquet",
        md="results/study/leaderboard.md",
        comparison="results/study/baseline/comparison.json",
        accuracy=report(
            "results/study/accuracy_vs_size.png",
            caption="../report/accuracy_vs_size.rst",
            category="study",
            subcategory="leaderboard",
        ),
        baseline=report(
            "results/study/baseline/sersic_vs_cnn.png",
            caption="../report/sersic_vs_cnn.rst",
            category="study",
            subcategory="classic baseline",
        ),
    log:
        "results/logs/study/leaderboard.log",
    conda:
        "../envs/deepsky.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        entries=lambda wc: study_entries(),
        calibration_names=lambda wc: study_calibration_names(),
        compare=config["study"]["baseline"]["compare"],
        compared=lambda wc: study_compared_models(),
        stargal_models=lambda wc: study_stargal_models(),
        note=deepsky_study.config_note(config["study"], config["train"], config["seed"]),
    script:
        "../../scripts/study_leaderboard.py"


rule study:
    default_target: False
    input:
        rules.study_leaderboard.output,
        lambda wc: study_calibration_files(),
    localrule: True
