"""Knows MLX, knows nothing of Jupyter or HTTP. Import `engine.engine.Engine`;
this package's own import stays free of MLX so that `api/` can use its plain
data modules (requests, errors, status, config)."""
