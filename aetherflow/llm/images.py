"""Images attached to a request (`aether run --image`), as message parts for vision-capable models."""

from __future__ import annotations

import base64
import mimetypes
from pathlib import Path

from aetherflow.llm.types import ImagePart


def image_part(path: Path) -> ImagePart:
    """The image at `path` as a data: URL part (the file was checked to be an image by the CLI)."""
    mime = mimetypes.guess_type(path.name)[0] or "image/png"
    encoded = base64.b64encode(path.read_bytes()).decode("ascii")
    return ImagePart(url=f"data:{mime};base64,{encoded}")
