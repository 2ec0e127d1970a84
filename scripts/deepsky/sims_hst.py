"""HST-like bulge+disk target domain (placeholder, filled in below)."""
