# Reproducibility: content digests of every result, so two runs can be compared file by file
# (`deepsky manifest --compare runA/results/manifest.tsv runB/results/manifest.tsv`).
# Build it with `snakemake manifest`; it depends on the default targets, so it comes last.


rule manifest:
    input:
        get_final_output(),
        lib=script_lib("manifest"),
    output:
        "results/manifest.tsv",
    log:
        "results/logs/manifest.log",
    localrule: True
    conda:
        "../envs/deepsky.yaml"
    script:
        "../../scripts/manifest.py"
