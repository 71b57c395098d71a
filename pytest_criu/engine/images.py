"""Image calls both engines answer alike: find or pull, commit, save, load, remove."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from typing import Any, BinaryIO

import docker
import docker.errors
import requests

from .api import EngineApi, error_text
from .errors import EngineError, ImageNotFoundError


class ImageCalls(EngineApi):
    """The ``/images`` part of the API."""

    def ensure_image(self, reference: str, *, pull: bool) -> dict[str, Any]:
        """Inspect ``reference``, pulling it first when it is missing and ``pull`` allows."""
        try:
            return self._inspect_image(reference)
        except docker.errors.ImageNotFound:
            if not pull:
                raise ImageNotFoundError(
                    f"image {reference!r} is not available locally; build it "
                    f"(`docker build` or `podman build`) or pull it"
                ) from None
        except docker.errors.APIError as error:
            raise EngineError(f"cannot inspect image {reference!r}: {error.explanation}") from None
        try:
            self.api.pull(reference)
            return self._inspect_image(reference)
        except docker.errors.DockerException as error:
            raise ImageNotFoundError(
                f"image {reference!r} is not available locally and pulling it failed ({error}); "
                f"build it or pull it where a registry is reachable"
            ) from None

    def _inspect_image(self, reference: str) -> dict[str, Any]:
        result: dict[str, Any] = self.api.inspect_image(reference)  # type: ignore[no-untyped-call]
        return result

    def commit(self, container_id: str, labels: Mapping[str, str]) -> str:
        changes = [f'LABEL {key}="{value}"' for key, value in labels.items()]
        result = self._call(
            "commit the checkpointed container",
            self.api.commit,
            container_id,
            repository="pytest-criu-snapshot",
            tag=container_id[:12],
            changes=changes,
        )
        return str(result["Id"])

    def image_exists(self, image_id: str) -> bool:
        try:
            self._inspect_image(image_id)
        except docker.errors.ImageNotFound:
            return False
        return True

    def remove_image(self, image_id: str) -> None:
        with contextlib.suppress(docker.errors.NotFound):
            self._call(f"remove image {image_id[:19]}", self.api.remove_image, image_id, force=True)

    def image_layers(self, image_id: str) -> list[str]:
        """The diff ids of an image's layers, lowest first."""
        info = self._call(f"inspect image {image_id[:19]}", self._inspect_image, image_id)
        return [str(layer) for layer in (info.get("RootFS") or {}).get("Layers") or []]

    def save_image(self, image_id: str, out: BinaryIO) -> None:
        """Write ``docker save``'s archive of ``image_id`` to ``out``."""
        try:
            for chunk in self.api.get_image(image_id, chunk_size=1 << 20):
                out.write(chunk)
        except docker.errors.DockerException as error:
            raise EngineError(
                f"{self.title} could not save image {image_id[:19]}: {error}"
            ) from None

    def load_image(self, archive: BinaryIO) -> None:
        """``docker load`` an archive; layers the daemon already has need not be in it."""
        try:
            response = self.api.post(
                self._url("/images/load"),
                params={"quiet": "1"},
                data=archive,
                headers={"Content-Type": "application/x-tar"},
                timeout=self.timeout,
            )
        except requests.exceptions.RequestException as error:
            raise EngineError(f"{self.title} did not answer the image load: {error}") from None
        with contextlib.closing(response):
            if response.status_code >= 300:
                raise EngineError(f"{self.title} could not load the image: {error_text(response)}")
            for line in response.text.splitlines():
                with contextlib.suppress(ValueError):
                    message = json.loads(line)
                    if isinstance(message, dict) and message.get("error"):
                        raise EngineError(
                            f"{self.title} could not load the image: {message['error']}"
                        )

    def images(self, *labels: str) -> list[dict[str, Any]]:
        """Images carrying every one of ``labels`` (``key`` or ``key=value``)."""
        return self._call("list images", self.api.images, filters={"label": list(labels)}) or []
