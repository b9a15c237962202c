"""The supervisor (``fastpath serve``) and the command channel between processes."""
