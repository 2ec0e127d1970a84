# Live SDSS star/galaxy data (stargal.source: sdss): SkyServer query -> frames -> ugriz cutout shards.
#
# Network rules run on the submitting host (localrule: compute nodes often lack internet), retry
# once more as a whole on top of the bounded per-request retries of deepsky.archives.net (settings:
# sdss.http, machinery read by the scripts, not params), and take one unit of the `sdss_requests`
# resource so that SDSS sees one client at a time: run with
#   snakemake --resources sdss_requests=1 ...
# Everything retrieved is cached under resources/sdss/ (pages keyed by request, objects table,
# frames): a rerun, or a rerun after a code change, never asks SDSS twice.  Cutout shards use the same shard format as
# the simulations, under results/sims/sdss/, so the star/galaxy task reads live and simulated data alike.

SDSS_DR = f"resources/sdss/dr{config['sdss']['release']}"
SDSS_QUERY_KEYS = (
    "release",
    "skyserver_url",
    "page_size",
    "max_objects",
    "include_qso",
    "cuts",
)


# the sdss shards are cut from SDSS frames, never simulated
ruleorder: sdss_cutouts > simulate


rule sdss_query:
    input:
        lib=script_lib("sdss_query"),
    output:
        objects=f"{SDSS_DR}/objects.parquet",
    log:
        "results/logs/sdss/query.log",
    benchmark:
        "results/benchmarks/sdss/query.tsv"
    retries: 1
    localrule: True
    conda:
        "../envs/deepsky.yaml"
    threads: 1
    resources:
        sdss_requests=1,
        mem_mb=2000,
    params:
        sdss={k: config["sdss"][k] for k in SDSS_QUERY_KEYS},
        pages_root=f"{SDSS_DR}/pages",
    script:
        "../../scripts/sdss_query.py"


rule sdss_frames:
    input:
        objects=rules.sdss_query.output.objects,
        lib=script_lib("sdss_frames"),
    output:
        manifest=f"{SDSS_DR}/frames.parquet",
    log:
        "results/logs/sdss/frames.log",
    benchmark:
        "results/benchmarks/sdss/frames.tsv"
    retries: 1
    localrule: True
    conda:
        "../envs/deepsky.yaml"
    threads: 1
    resources:
        sdss_requests=1,
        mem_mb=2000,
    params:
        sdss={k: config["sdss"][k] for k in ("release", "sas_url")},
        frames_dir="resources/sdss/frames",
    script:
        "../../scripts/sdss_frames.py"


rule sdss_cutouts:
    input:
        objects=rules.sdss_query.output.objects,
        frames=rules.sdss_frames.output.manifest,
        lib=script_lib("sdss_cutouts"),
    output:
        npz="results/sims/sdss/shard{shard}.npz",
        parquet="results/sims/sdss/shard{shard}.parquet",
        report="results/sdss/cutouts/shard{shard}.json",
    log:
        "results/logs/sdss/cutouts/shard{shard}.log",
    benchmark:
        "results/benchmarks/sdss/cutouts/shard{shard}.tsv"
    wildcard_constraints:
        shard=r"\d{4}",
    conda:
        "../envs/deepsky.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=60,
    params:
        sdss={
            k: config["sdss"][k] for k in ("release", "shards", "stamp", "pixel_scale")
        },
        frames_dir="resources/sdss/frames",
    script:
        "../../scripts/sdss_cutouts.py"
