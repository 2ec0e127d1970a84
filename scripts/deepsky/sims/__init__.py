"""GalSim simulations: recipes by kind (``registry``), shared seeds, PSFs and photometry.

``simulate_shard(recipe, seed, dataset, shard)`` makes one shard of any recipe; the recipe modules
(``sersic``, ``hst_target``, ``stargal``) are imported only when a recipe of their kind is simulated.
"""

from .registry import simulate_shard

__all__ = ["simulate_shard"]
