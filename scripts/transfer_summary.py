"""Rule transfer_summary: table (Parquet + Markdown) and figure of accuracy vs label budget per strategy."""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from deepsky import runlog  # noqa: E402

log = runlog.redirect(snakemake.log[0])
from deepsky import io  # noqa: E402
from deepsky.reports import plots, transfer_report  # noqa: E402

out = snakemake.output
reports = [json.loads(Path(f).read_text()) for f in snakemake.input.metrics]
table = transfer_report.summary_table(reports)
checks = transfer_report.claims(table, snakemake.params.claim_budget)
io.write_parquet(out.table, table)
io.write_json(out.checks, {"max_budget": snakemake.params.claim_budget, "budgets": checks})
lines = ["# Transfer to the target domain: accuracy on the held-out target test set", "",
         f"Target: {snakemake.params.target}; base model: {snakemake.params.base_model}; "
         f"{int(table['n_test'].iloc[0])} test stamps (never used to fit or stop early).", "",
         "median_abs_rel = median |dR_e|/R_e, bias = median (pred - true)/true.", "",
         transfer_report.markdown_table(table), "",
         f"Checks at budgets <= {snakemake.params.claim_budget} (full fine-tuning vs zero-shot and scratch):", ""]
lines += [f"- n={c['budget']}: full {c['full']:.4f}; halves zero-shot ({c.get('zeroshot', float('nan')):.4f}): "
          f"{c.get('halves_zeroshot')}; beats scratch ({c.get('scratch', float('nan')):.4f}): {c.get('beats_scratch')}"
          for c in checks]
with io.atomic_path(out.markdown) as tmp:
    tmp.write_text("\n".join(lines) + "\n")
plots.transfer_budget(table, out.plot, f"transfer to {snakemake.params.target}")
log.info("\n" + transfer_report.markdown_table(table))
