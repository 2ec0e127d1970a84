"""``deepsky predict``: its options and examples (the work is done by ``pipeline.run``)."""

from __future__ import annotations

import argparse

from . import outputs, pipeline

DESCRIPTION = """\
Apply a trained deepsky model to your own data: FITS images (one per band, with a celestial WCS)
plus a catalogue of RA/Dec (any table astropy reads: CSV, ECSV, FITS, VOTable, Parquet, ...), or a
cube of stamps (.npz or .npy, (N, bands, H, W) or (N, H, W)). Stamps are made exactly as the model
was trained (its metadata JSON beside the .keras file says how); rows whose stamp is unusable get
a flag and NaN predictions, never a silent wrong number. Output: Parquet, FITS or ECSV (by the
extension of --out, or --format) with provenance in its metadata, or with --partitioned a folder
of Parquet parts that a rerun completes (resumable)."""

EPILOG = """\
examples:
  # sizes of the objects of a catalogue on an HST mosaic, as Parquet
  deepsky predict sizenet.keras --images f160w.fits --catalogue objects.csv -o sizes.parquet

  # a cube of stamps at 0.03"/px (resampled onto the model's grid), as a FITS table
  deepsky predict sizenet.keras --stamps cube.npz --stamps-pixel-scale 0.03 -o sizes.fits

  # a PSF-aware model: a PSF image, a per-object cube plane, or a FWHM (arcsec)
  deepsky predict psfnet.keras --images i.fits --catalogue c.fits --psf psf.fits -o sizes.ecsv
  deepsky predict psfnet.keras --images i.fits --catalogue c.fits --psf psfs.fits --psf-index-col psf_id -o s.parquet
  deepsky predict psfnet.keras --images i.fits --catalogue c.fits --psf-fwhm 0.6 -o s.parquet

  # a survey catalogue: parts of 10000 rows; rerun the same line to resume after an interruption
  deepsky predict sizenet.keras --images mosaic.fits --catalogue survey.parquet -o sizes/ --partitioned \\
      --chunk-size 10000

exit status: 0 done, 2 bad input (one line on stderr names it; --debug shows the traceback)."""


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("predict", help="apply a trained model to FITS images + a catalogue, or to a cube of stamps",
                       description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help=".keras model (its .json metadata beside it)")
    p.add_argument("-o", "--out", required=True, metavar="PATH",
                   help="output file (.parquet, .fits or .ecsv), or a folder with --partitioned")

    g = p.add_argument_group("inputs")
    g.add_argument("--images", nargs="+", metavar="FITS", help="one FITS image per band, in the model's band order")
    g.add_argument("--catalogue", "--catalog", metavar="TABLE",
                   help="table of the objects (RA/Dec in degrees): CSV, ECSV, FITS, VOTable, Parquet, ...")
    g.add_argument("--catalogue-format", "--catalog-format", metavar="FMT",
                   help="astropy format name of the catalogue when its extension does not tell (e.g. ascii.basic)")
    g.add_argument("--stamps", metavar="CUBE", help="stamps (.npz with an 'images' array, or .npy): (N, bands, H, W)")
    g.add_argument("--stamps-pixel-scale", type=float, metavar="ARCSEC",
                   help="arcsec/px of the stamps (checked against the model, resampled if they differ)")
    g.add_argument("--ra-col", metavar="COL", help="RA column (default: first of ra, RA, RAJ2000, ...)")
    g.add_argument("--dec-col", metavar="COL", help="Dec column (default: first of dec, DEC, DEJ2000, ...)")
    g.add_argument("--hdu", type=int, metavar="N",
                   help="FITS HDU index of the images (default: first 2-D image with a WCS)")
    g.add_argument("--blank", type=float, metavar="VALUE",
                   help="pixel value meaning 'no data' (e.g. 0 in drizzled mosaics)")

    g = p.add_argument_group("resampling (models on an arcsec grid)")
    g.add_argument("--no-resample", dest="resample", action="store_false",
                   help="refuse images whose pixel scale differs from the model's instead of resampling")
    g.add_argument("--max-scale-ratio", type=float, default=3.0, metavar="R",
                   help="largest image/model pixel-scale ratio (or its inverse) to resample (default 3)")

    g = p.add_argument_group("PSF (PSF-aware models, which measure in pixels)")
    g.add_argument("--psf", metavar="FITS", help="PSF image (one for every object), or a cube with --psf-index-col")
    g.add_argument("--psf-hdu", type=int, metavar="N", help="HDU of the PSF (default: first image or cube)")
    g.add_argument("--psf-index-col", metavar="COL", help="catalogue column: plane of the --psf cube for each object")
    g.add_argument("--psf-fwhm", type=float, metavar="ARCSEC", help="one PSF FWHM for every object (Moffat assumed)")
    g.add_argument("--psf-fwhm-col", metavar="COL", help="catalogue column: PSF FWHM (arcsec) of each object")
    g.add_argument("--max-binning", type=int, default=8, metavar="B",
                   help="largest block-sum factor for objects too big for the native grid (default 8)")

    g = p.add_argument_group("output")
    g.add_argument("--format", dest="fmt", choices=sorted(outputs.FORMATS),
                   help="output format (default: from the extension of --out)")
    g.add_argument("--partitioned", action="store_true",
                   help="write a folder of Parquet parts, one per chunk (resumable), plus _manifest.json")
    g.add_argument("--chunk-size", type=int, default=pipeline.DEFAULT_CHUNK, metavar="N",
                   help=f"rows predicted at a time, and rows per part (default {pipeline.DEFAULT_CHUNK})")
    g.add_argument("--no-date", dest="date", action="store_const", const=None, default="now",
                   help="leave the date out of the provenance (else now, or SOURCE_DATE_EPOCH when set)")
    p.set_defaults(func=main)
    return p


def main(args: argparse.Namespace) -> int:
    debug = getattr(args, "debug", False)
    pipeline.run(args.model, args.out, args.images, args.catalogue, args.stamps, args.stamps_pixel_scale, args.ra_col,
            args.dec_col, args.resample, args.max_scale_ratio, args.hdu, args.blank,
            catalogue_format=args.catalogue_format, fmt=args.fmt, partitioned=args.partitioned,
            chunk_size=args.chunk_size, date=args.date, psf=args.psf, psf_hdu=args.psf_hdu,
            psf_index_col=args.psf_index_col, psf_fwhm=args.psf_fwhm, psf_fwhm_col=args.psf_fwhm_col,
            max_binning=args.max_binning, backend_log=pipeline._log if debug else None, keep_table=False)
    return 0
