"""Tool bundles: one zip that moves a tool (classes, settings, ROI, models, recipes, optionally its
dataset) between studios, with a SHA-256 manifest and an optional Ed25519 signature.

``export.export_bundle`` writes one, ``import_.import_bundle`` checks it whole and then writes it in
one step; ``signing`` makes keys and signs / verifies manifests; ``manifest`` and ``document`` are the
two JSON files a bundle is described by; ``reader`` refuses a malformed bundle before anything is written.
"""
