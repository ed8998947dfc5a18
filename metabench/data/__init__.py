"""Offline-first data layer: data roots, checksums, downloads, safe extraction, caches."""
