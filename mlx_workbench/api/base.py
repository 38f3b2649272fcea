"""What every handler under mlx/ shares: the way to the engine, auth on every
method, body parsing with the pydantic models, and OpenAI-shaped errors."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from jupyter_server.base.handlers import APIHandler
from pydantic import BaseModel, ValidationError
from tornado import web

from ..model_ids import ModelId, parse_id
from .errors import ApiError, error_for, validation_error
from .response_schemas import ErrorResponse

Body = TypeVar("Body", bound=BaseModel)

if TYPE_CHECKING:  # for the type checker only: at run time the api never imports MLX
    from ..app import MLXWorkbench
    from ..engine.engine import Engine


def implemented_methods(handler: type[web.RequestHandler]) -> list[str]:
    """The HTTP methods `handler` answers (the others are 405)."""
    return [m for m in handler.SUPPORTED_METHODS
            if getattr(handler, m.lower()) is not getattr(web.RequestHandler, m.lower())]


def is_open(method) -> bool:
    """Marked @allow_unauthenticated."""
    return getattr(method, "__allow_unauthenticated", False)


class BaseHandler(APIHandler):
    @property
    def workbench(self) -> MLXWorkbench:
        """The MLXWorkbench extension app."""
        return self.settings["mlx_workbench"]

    @property
    def engine(self) -> Engine:
        return self.workbench.engine

    def model_id(self, model_id: str, adapter: str | None) -> ModelId:
        """The (model, adapter) a request names, read as everywhere (model_ids.py); its
        "adapter" field, when set, must agree with an adapter the id names."""
        named = parse_id(model_id, self.engine.config.models)
        if named.adapter is None:
            return ModelId(named.model, adapter)
        if adapter not in (None, named.adapter):
            raise ApiError(400, f"The model id names adapter '{named.adapter}' but 'adapter' is '{adapter}'.",
                           param="adapter", code="conflicting_adapter")
        return named

    async def prepare(self):
        await super().prepare()
        # Jupyter only refuses what @web.authenticated guards; refuse an unknown path or
        # method too, so that nothing under mlx/ but health answers without a token.
        if not self.current_user and not is_open(getattr(self, self.request.method.lower())):
            raise web.HTTPError(403)  # answered as 401 by write_error

    def parse(self, model: type[Body]) -> Body:
        # pydantic parses the bytes itself: bounded nesting, UTF-8 checked, JSON types kept.
        try:
            return model.model_validate_json(self.request.body or b"null")
        except ValidationError as e:
            raise validation_error(e) from None

    def send(self, body: BaseModel, status: int = 200) -> None:
        self.set_status(status)
        self.finish(body.model_dump_json())

    def write_error(self, status_code: int, **kwargs) -> None:
        """Every error OpenAI-shaped, never an HTML page."""
        exc = kwargs.get("exc_info", (None, None, None))[1]
        error = error_for(status_code, exc, anonymous=lambda: not self.current_user)
        if status_code != error.status_code:
            self.set_status(error.status_code)
        if error.status_code == 405:
            self.set_header("Allow", ", ".join(implemented_methods(type(self))))
        for name, value in error.headers.items():
            self.set_header(name, value)
        self.finish(ErrorResponse(error=error.detail).model_dump_json())
