"""deepsky: CNNs on astronomical images (library behind the Snakemake workflow)."""

__version__ = "0.1.0"
