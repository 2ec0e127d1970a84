# Stage 5: transfer of the size model to a target domain (transfer.target), compared across
# strategies (zeroshot, head, full, scratch) and label budgets on one held-out target test set.
# Build it with `snakemake transfer` (it is not part of the default target: see README).


rule transfer_split:
    input:
        parquet=transfer_target_files("parquet"),
        lib=script_lib("transfer_split"),
    output:
        "results/transfer/split.parquet",
    log:
        "results/logs/transfer/split.log",
    conda:
        "../envs/deepsky.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        test_size=config["transfer"]["test_size"],
        seed=config["seed"],
    script:
        "../../scripts/transfer_split.py"


rule transfer_fit:
    input:
        npz=transfer_target_files("npz"),
        parquet=transfer_target_files("parquet"),
        split="results/transfer/split.parquet",
        # the pre-trained model is an explicit input: retraining it reruns every transfer job
        base=transfer_base_model(),
        lib=script_lib("transfer_fit"),
    output:
        model="results/transfer/{strategy}/n{budget}/model.keras",
        meta="results/transfer/{strategy}/n{budget}/model.json",
        history="results/transfer/{strategy}/n{budget}/history.parquet",
    log:
        "results/logs/transfer/{strategy}/n{budget}/fit.log",
    benchmark:
        "results/benchmarks/transfer/{strategy}/n{budget}/fit.tsv"
    wildcard_constraints:
        strategy="zeroshot|head|full|scratch",
        budget=r"\d+",
    conda:
        "../envs/deepsky.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=6000,
        runtime=60,
    params:
        cfg=lambda wc: transfer_fit_cfg(wc.strategy),
        seed=config["seed"],
        # resumable epoch checkpoints: undeclared scratch, removed when the job succeeds
        scratch=lambda wc: f"results/.scratch/transfer/{wc.strategy}/n{wc.budget}",
    script:
        "../../scripts/transfer_fit.py"


rule transfer_evaluate:
    input:
        npz=transfer_target_files("npz"),
        parquet=transfer_target_files("parquet"),
        split="results/transfer/split.parquet",
        model="results/transfer/{strategy}/n{budget}/model.keras",
        lib=script_lib("transfer_evaluate"),
    output:
        metrics="results/transfer/{strategy}/n{budget}/metrics.json",
        predictions="results/transfer/{strategy}/n{budget}/predictions.parquet",
        pred_vs_true=report(
            "results/transfer/{strategy}/n{budget}/pred_vs_true.png",
            caption="../report/transfer_pred_vs_true.rst",
            category="transfer",
            subcategory="{strategy}",
        ),
    log:
        "results/logs/transfer/{strategy}/n{budget}/evaluate.log",
    benchmark:
        "results/benchmarks/transfer/{strategy}/n{budget}/evaluate.tsv"
    wildcard_constraints:
        strategy="zeroshot|head|full|scratch",
        budget=r"\d+",
    conda:
        "../envs/deepsky.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=20,
    script:
        "../../scripts/transfer_evaluate.py"


rule transfer_summary:
    input:
        metrics=[f"results/transfer/{s}/n{b}/metrics.json" for s, b in transfer_runs()],
        lib=script_lib("transfer_summary"),
    output:
        table="results/transfer/summary.parquet",
        checks="results/transfer/checks.json",
        markdown=report(
            "results/transfer/summary.md",
            caption="../report/transfer_summary.rst",
            category="transfer",
        ),
        plot=report(
            "results/transfer/plots/budget.png",
            caption="../report/transfer_budget.rst",
            category="transfer",
        ),
    log:
        "results/logs/transfer/summary.log",
    conda:
        "../envs/deepsky.yaml"
    params:
        claim_budget=config["transfer"]["claim_budget"],
        target=config["transfer"]["target"],
        base_model=config["transfer"]["base_model"],
    script:
        "../../scripts/transfer_summary.py"


rule transfer:
    input:
        transfer_outputs(),
