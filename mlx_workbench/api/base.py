"""What every handler under mlx/ shares: the way to the engine, auth on every
method, body parsing with the pydantic models, and OpenAI-shaped errors."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, TypeVar

from jupyter_server.auth import IdentityProvider
from jupyter_server.auth.decorator import allow_unauthenticated
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
    return [
        m
        for m in handler.SUPPORTED_METHODS
        if getattr(handler, m.lower()) is not getattr(web.RequestHandler, m.lower())
    ]


def is_open(method) -> bool:
    """Marked @allow_unauthenticated."""
    return getattr(method, "__allow_unauthenticated", False)


# Headers the official SDKs send from a browser, which a CORS preflight must allow by name:
# the key (x-api-key is Anthropic's), the APIs' version headers, and the x-stainless-*
# telemetry headers, whose set changes from one SDK release to the next.
_SDK_HEADERS = re.compile(r"x-api-key|anthropic-[\w-]+|openai-[\w-]+|x-stainless-[\w-]+")


def _token_names_no_user(provider: IdentityProvider) -> bool:
    """Jupyter's own token check, which authenticates a client but names no user (unlike,
    say, JupyterHub's tokens)."""
    return type(provider).get_user_token is IdentityProvider.get_user_token


class BaseHandler(APIHandler):
    _key_in_header = False  # the request names its credential in a header
    answered_error: ApiError | None = None  # the error this request was answered with

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
            raise ApiError(
                400,
                f"The model id names adapter '{named.adapter}' but 'adapter' is '{adapter}'.",
                param="adapter",
                code="conflicting_adapter",
            )
        return named

    async def prepare(self):
        headers = self.request.headers
        if "x-api-key" in headers:
            # Anthropic's clients send the key there; Jupyter's token check reads Authorization.
            # Two keys that disagree authenticate nothing.
            key = headers["x-api-key"]
            sent = self.identity_provider.auth_header_pat.match(headers.get("Authorization", ""))
            if "Authorization" not in headers or (sent and sent.group(2) == key):
                headers["Authorization"] = f"Bearer {key}"
            else:
                headers["Authorization"] = ""
        if "Authorization" in headers:
            # The key a client sends is its credential: a login cookie that comes along (HTTP
            # clients keep the cookies they get) must not let a wrong or revoked key through.
            self._key_in_header = True
            headers.pop("Cookie", None)
        await super().prepare()
        if self._key_in_header and self.token_authenticated and _token_names_no_user(self.identity_provider):
            # Without a cookie, Jupyter makes up a new anonymous user for each request; the
            # key's requests are one client's.
            self.current_user = self._jupyter_current_user = self.workbench.key_user(self)
        # Jupyter only refuses what @web.authenticated guards; refuse an unknown path or
        # method too, so that nothing under mlx/ but health answers without a token.
        if not self.current_user and not is_open(getattr(self, self.request.method.lower())):
            raise web.HTTPError(403)  # answered as 401 by write_error

    def set_cookie(self, *args, **kwargs) -> None:
        # A client authenticated by its key keeps no session: Jupyter would log it in with a
        # cookie of a new anonymous user on every request.
        if not self._key_in_header:
            super().set_cookie(*args, **kwargs)

    @allow_unauthenticated
    def options(self, *args, **kwargs) -> None:
        """CORS preflight: Jupyter's, plus the SDKs' own headers for the origins the user
        allowed (`ServerApp.allow_origin`), so that the official JS SDKs work in a browser."""
        super().options(*args, **kwargs)
        if "Access-Control-Allow-Origin" not in self._headers:
            return
        allowed = [h.strip() for h in self._headers["Access-Control-Allow-Headers"].split(",")]
        requested = self.request.headers.get("Access-Control-Request-Headers", "").split(",")
        extra = [h.strip().lower() for h in requested if _SDK_HEADERS.fullmatch(h.strip().lower())]
        self.set_header("Access-Control-Allow-Headers", ", ".join(dict.fromkeys(allowed + extra)))

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
        error = self.answered_error = error_for(status_code, exc, anonymous=lambda: not self.current_user)
        if hasattr(self, "_jupyter_current_user"):  # prepare got as far as the credential
            self.set_cors_headers()  # send_error cleared them: a browser client reads the error too
        if status_code != error.status_code:
            self.set_status(error.status_code)
        if error.status_code == 405:
            self.set_header("Allow", ", ".join(implemented_methods(type(self))))
        for name, value in error.headers.items():
            self.set_header(name, value)
        self.finish(self.error_body(error).model_dump_json())

    def error_body(self, error: ApiError) -> BaseModel:
        """The body of an error in this handler's API (OpenAI's here)."""
        return ErrorResponse(error=error.detail)
