"""The dashboard's build (``site/``), generated from ``dashboard/`` by ``python dashboard/build.py``
(``npm ci && npm run build``) and committed, so ``pip install .`` ships it without Node.js."""
