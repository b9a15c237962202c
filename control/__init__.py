"""The control plane: a Falcon WSGI app (one module per face) served by gunicorn, and the
PasarGuard node API."""
