"""Plain-Python renderings that are the executable spec of the compiled views: tests compare
the views' bodies against them byte for byte.  Only tests use them, so they live here."""
