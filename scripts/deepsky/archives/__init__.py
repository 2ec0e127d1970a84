"""Live archives: SDSS (catalogue queries, frames) and CANDELS (VizieR catalogue, mosaics).

Both write the same shard format as the simulations, so training reads live and simulated data alike.
"""
