"""hotspots: multi-agency violence hotspot analysis for community safety partnerships.

The pipeline reads top to bottom (see ``hotspots.pipeline``): load, weight,
detect, profile, attribute, evaluate, publish.
"""
__version__ = "0.1.0"
