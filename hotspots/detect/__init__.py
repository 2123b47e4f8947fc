"""Detect: hotspot statistics on the seamless grid (Gi*, KDE, clusters, space-time)."""
