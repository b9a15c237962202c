"""Errors of the PasarGuard face, each with its HTTP status and its gRPC status code.

Both transports raise and catch the same ``FaceError``; REST answers a plain-text body (the
message and a newline, as the reference's ``http.Error`` does), gRPC aborts with the message.
"""
from __future__ import annotations

import enum

import grpc


class Failure(enum.Enum):
    BAD_REQUEST = (400, grpc.StatusCode.INVALID_ARGUMENT)
    UNAUTHENTICATED = (401, grpc.StatusCode.UNAUTHENTICATED)
    FORBIDDEN = (403, grpc.StatusCode.PERMISSION_DENIED)
    NOT_FOUND = (404, grpc.StatusCode.NOT_FOUND)
    BAD_KEY = (422, grpc.StatusCode.INVALID_ARGUMENT)
    # The panel's client reads a 500 / INTERNAL whose text starts with "failed to update users"
    # as "the node refused this batch" and then isolates the user it refuses, delivering the
    # others; any other status makes it resend the whole batch forever.
    REFUSED = (500, grpc.StatusCode.INTERNAL)
    NOT_STARTED = (500, grpc.StatusCode.INTERNAL)
    UNAVAILABLE = (503, grpc.StatusCode.UNAVAILABLE)

    @property
    def http_status(self) -> int:
        return self.value[0]

    @property
    def grpc_code(self) -> grpc.StatusCode:
        return self.value[1]


class FaceError(Exception):
    def __init__(self, failure: Failure, message: str):
        super().__init__(message)
        self.failure = failure
        self.message = message


NOT_STARTED_MESSAGE = "backend not initialized"
REFUSED_PREFIX = "failed to update users: "


def bad_request(message: str) -> FaceError:
    return FaceError(Failure.BAD_REQUEST, message)


def not_found(message: str) -> FaceError:
    return FaceError(Failure.NOT_FOUND, message)


def refused(message: str) -> FaceError:
    return FaceError(Failure.REFUSED, REFUSED_PREFIX + message)


def not_started() -> FaceError:
    return FaceError(Failure.NOT_STARTED, NOT_STARTED_MESSAGE)
