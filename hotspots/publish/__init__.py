"""Publish: the map for each audience tier, GIS exports and the audit manifest."""
