"""OpenAI-shaped HTTP errors: `{"error": {"message", "type", "param", "code"}}` for every failure.

Handlers raise `ApiError`; the middleware turns it, aiohttp's own HTTP exceptions (404, 405, 413, ...)
and any unexpected exception into that JSON shape. Bodies never carry a stack trace; the trace goes to
the log with the request id, which the client also gets in the `x-request-id` header.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from media_gateway.app_keys import SETTINGS
from media_gateway.observability.logging import get_logger

log = get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# OpenAI's error `type` values by HTTP status (the SDK maps status to its exception classes; the type
# is informational but clients print it).
_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "invalid_request_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "requests",
}


class ApiError(Exception):
    """An error answered to the client in the OpenAI shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        error_type: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.error_type = error_type or _TYPE_BY_STATUS.get(status, "server_error")
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return error_body(self.message, error_type=self.error_type, code=self.code, param=self.param)

    def response(self) -> web.Response:
        return web.json_response(self.body(), status=self.status, headers=self.headers)


def error_body(
    message: str, *, error_type: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def _from_http_exception(request: web.Request, exc: web.HTTPException) -> ApiError:
    status = exc.status
    headers: dict[str, str] = {}
    if status == 404:
        return ApiError(404, f"Invalid URL ({request.method} {request.path})", code="not_found")
    if status == 405:
        allowed = getattr(exc, "allowed_methods", None) or ()
        if allowed:
            headers["Allow"] = ", ".join(sorted(allowed))
        return ApiError(
            405,
            f"Method {request.method} is not allowed for {request.path}",
            code="method_not_allowed",
            headers=headers,
        )
    if status == 413:
        return ApiError(
            413,
            f"Request body too large; the limit is {request.app[SETTINGS].max_body_bytes} bytes.",
            code="request_too_large",
        )
    message = exc.text if exc.text and not exc.text.startswith(f"{status}:") else exc.reason
    return ApiError(status, message or exc.reason, code=None)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer every error in the OpenAI JSON shape."""
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.response()
    except web.HTTPException as exc:
        if exc.status < 400:  # redirects and 2xx raised as exceptions pass through untouched
            raise
        return _from_http_exception(request, exc).response()
    except Exception:
        # The middleware is the last place an unexpected failure can be turned into an answer; the
        # trace goes to the log (with the request id), never into the body.
        log.exception("http.unhandled_exception", path=request.path, method=request.method)
        return ApiError(
            500,
            "The server had an error while processing your request.",
            error_type="server_error",
            code="internal_error",
        ).response()


def refuse_oversized(request: web.Request) -> None:
    """Refuse a body announced larger than the limit before reading a byte of it."""
    limit = request.app[SETTINGS].max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)


def _reject_constant(name: str) -> object:
    # Python's json accepts NaN and Infinity; JSON does not, and they poison numeric validation.
    raise ValueError(f"{name} is not valid JSON")


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """Read the body as a JSON object, or raise the OpenAI-style 400/413/415."""
    refuse_oversized(request)
    content_type = request.content_type
    if request.can_read_body and content_type not in ("application/json", "application/octet-stream", ""):
        raise ApiError(
            415,
            f"Unsupported content type {content_type!r}; send application/json.",
            code="unsupported_content_type",
        )
    raw = await request.read()  # raises HTTPRequestEntityTooLarge past client_max_size
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ApiError(
            400,
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using "
            "your HTTP library correctly. The OpenAI API expects a JSON payload.)",
            code="invalid_json",
        ) from exc
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.", code="invalid_type")
    return body
