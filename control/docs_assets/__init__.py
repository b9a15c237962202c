"""Swagger UI and ReDoc, vendored unchanged from their npm packages by
``dashboard/vendor_docs.py`` (see there for which versions and why); ``vendor.json`` records
each file's package, version and SHA-256.  Served by control/docs_ui.py."""
