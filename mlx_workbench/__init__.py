"""mlx_workbench: a Jupyter server as a local, OpenAI-compatible LLM server on MLX."""

__version__ = "0.1.0"
