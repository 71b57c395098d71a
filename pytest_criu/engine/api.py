"""A connection to the Docker-compatible REST API that both Docker and Podman serve.

Docker and Podman answer the same ``/containers``, ``/images`` and ``/exec`` endpoints;
:class:`EngineApi` opens the socket and turns transport and API errors into
:class:`~.errors.EngineError` messages that name the engine and the action.
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import Any, ClassVar

import docker
import docker.errors
import requests

from .errors import EngineError


class EngineApi(abc.ABC):
    """A connection to one container engine's API socket."""

    name: ClassVar[str]
    """``docker`` or ``podman``."""
    title: ClassVar[str]
    start_hint: ClassVar[str]

    @classmethod
    @abc.abstractmethod
    def default_url(cls) -> str:
        """The socket used when neither the caller nor the environment names one."""

    def __init__(self, base_url: str | None = None, timeout: float = 120.0) -> None:
        where = base_url or self.default_url()
        if where.startswith("unix://") and not Path(where.removeprefix("unix://")).exists():
            # Checked here: docker-py leaks a socket when it fails to connect to a unix path.
            raise EngineError(
                f"cannot connect to {self.title} at {where}: no such socket (is the "
                f"daemon running?); {self.start_hint} or set --criu-engine-url"
            )
        # docker-py hands the timeout to requests, which takes fractions of a second; its
        # stubs say int, and int() would turn 0.5 into 0 ("connect timeout to 0").
        seconds: Any = float(timeout)
        try:
            if base_url:
                self.api = docker.APIClient(base_url=base_url, version="auto", timeout=seconds)
            else:
                self.api = docker.from_env(version="auto", timeout=seconds).api
        except docker.errors.DockerException as error:
            raise EngineError(
                f"cannot connect to {self.title} at {where}: {error}; "
                f"{self.start_hint} or set --criu-engine-url"
            ) from None
        self.base_url = base_url
        self.timeout = timeout
        self._info: dict[str, Any] | None = None

    def close(self) -> None:
        self.api.close()

    def info(self) -> dict[str, Any]:
        if self._info is None:
            self._info = self._call("read the daemon's info", self.api.info)
        return self._info

    def version(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("read the daemon's version", self.api.version)
        return result

    def _url(self, path: str) -> str:
        return f"{self.api.base_url}/v{self.api.api_version}{path}"

    def _call(self, action: str, function: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except docker.errors.NotFound:
            raise
        except docker.errors.APIError as error:
            raise EngineError(f"{self.title} could not {action}: {error.explanation}") from None
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as error:
            raise EngineError(
                f"{self.title} did not answer when asked to {action}: {error}"
            ) from None


def error_text(response: requests.Response) -> str:
    try:
        return str(response.json().get("message", response.text))
    except ValueError:
        return response.text
