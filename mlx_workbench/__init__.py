"""mlx_workbench: a Jupyter server as a local, OpenAI-compatible LLM server on MLX.

Entry points only; each import is deferred so that a kernel loading the magics
never imports the server side (and never MLX), and the server never imports IPython.
"""

from ._version import __version__

__all__ = ["__version__", "compare", "openai_client", "panel"]


def _jupyter_server_extension_points():
    from .app import MLXWorkbench

    return [{"module": "mlx_workbench.app", "app": MLXWorkbench}]


def _jupyter_labextension_paths():
    return [{"src": "labextension", "dest": "mlx-workbench"}]


def load_ipython_extension(ipython):
    """`%load_ext mlx_workbench`: registers %%mlx_chat and the line magics."""
    from .kernel.magics import load_ipython_extension as load

    load(ipython)


def panel(**kwargs):
    """The pool panel widget: models, load/unload/pin, live memory, queue (see kernel/widgets.py)."""
    from .kernel.widgets import panel as make_panel

    return make_panel(**kwargs)


def compare(prompt, targets, **kwargs):
    """Stream one prompt to several (model, adapter) targets side by side (see kernel/widgets.py)."""
    from .kernel.widgets import compare as run_compare

    return run_compare(prompt, targets, **kwargs)


def openai_client(asynchronous: bool = False, **kwargs):
    """An `openai.OpenAI` client (`AsyncOpenAI` if `asynchronous`) of the mlx_workbench server
    this kernel belongs to, found as the magics find it; keyword arguments go to the client."""
    import openai

    from .kernel.client import discover

    endpoint = discover()
    client = openai.AsyncOpenAI if asynchronous else openai.OpenAI
    return client(base_url=endpoint.openai_base_url, api_key=endpoint.token or "none", **kwargs)
