"""Errors the engine reports to a request. The API maps each to an HTTP status."""

from __future__ import annotations


class EngineError(Exception):
    """Base of every error a request can fail with. `param` names the request
    field at fault, when there is one."""

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param


class InvalidRequest(EngineError):
    """The request cannot be served as asked (bad token id in logit_bias, ...)."""


class InvalidForModel(InvalidRequest):
    """Well formed, but not for this model: token ids outside its vocabulary, a chat
    its template refuses. What the API document cannot say, since it depends on the model."""


class ContextLengthExceeded(InvalidRequest):
    def __init__(self, prompt_tokens: int, limit: int, at_least: bool = False, param: str = "messages"):
        super().__init__(
            f"This model's maximum context length is {limit} tokens, but the prompt "
            f"has {'at least ' if at_least else ''}{prompt_tokens} tokens.",
            param=param,
        )
        self.prompt_tokens = prompt_tokens
        self.limit = limit


class ModelNotFound(EngineError):
    def __init__(self, name: str, known: list[str], reason: str | None = None):
        listing = ", ".join(known) if known else "none"
        why = f" ({reason.rstrip('.')})" if reason else ""
        super().__init__(f"The model '{name}' does not exist{why}. Known models: {listing}.", param="model")
        self.name = name
        self.known = known


class ModelBusy(EngineError):
    """An unload asked of an entry that is serving requests."""


class QueueFull(EngineError):
    def __init__(self, limit: int, retry_after: float = 1.0):
        super().__init__(f"The server is busy: {limit} requests are already waiting. Retry shortly.")
        self.limit = limit
        self.retry_after = retry_after


class EngineNotReady(EngineError):
    """Not started, stopping, or the device thread died and was not restarted."""


class EngineStopped(EngineError):
    """The engine shut down while the request was in flight."""


class LoadFailed(EngineError):
    """A model or adapter could not be loaded (missing or corrupt files)."""


class MemoryBudgetExceeded(LoadFailed):
    """Loading would exceed the memory budget even after evicting what may be evicted."""


class ChatTemplateFailed(EngineError):
    """The model's chat template is broken: it does not parse, or fails while rendering
    a valid conversation. Chat with this model cannot work; text completions can."""


class GenerationFailed(EngineError):
    """An exception escaped the model while generating; only this request is affected."""
