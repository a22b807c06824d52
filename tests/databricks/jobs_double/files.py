"""The double's Files API 2.0 over Unity Catalog volumes: ``/Volumes/<catalog>/<schema>/<volume>/...`` kept as
files under the double's ``root`` (the same files a run's driver sees at those paths, see :mod:`.runs`).

- ``PUT /api/2.0/fs/files{path}?overwrite=true|false``: the body is the file (octet stream); 204. The parent
  directory must exist (404 otherwise); an existing file with ``overwrite=false``: 409 ``ALREADY_EXISTS``.
- ``GET /api/2.0/fs/files{path}``: the file's bytes (``application/octet-stream``, ``Content-Length``,
  ``Last-Modified``); ``HEAD``: the same headers without a body; ``DELETE``: 204. A missing file: 404 ``NOT_FOUND``.
- ``PUT /api/2.0/fs/directories{path}``: ``mkdir -p``, 204 (idempotent); ``GET``: ``{"contents": [{"path",
  "is_directory", "file_size", "last_modified", "name"}], "next_page_token"}`` (``page_size`` entries a page, at
  most 1000); ``HEAD``: 200; ``DELETE``: an empty directory, 204; a non-empty one: 409 ``DIRECTORY_NOT_EMPTY``.
- A path outside a volume of ``volumes``: 404 (the volume does not exist) or 400 (not an absolute volume path).
"""

from __future__ import annotations

import email.utils
import os
from typing import Any

from aiohttp import web

FILES_API = "/api/2.0/fs"
DEFAULT_VOLUME = "/Volumes/main/flyte/data"


class VolumeFiles:
    def __init__(self, double: Any) -> None:
        self.double = double
        self.volumes = {DEFAULT_VOLUME}

    def routes(self, app: web.Application) -> None:
        app.router.add_route("*", FILES_API + "/files/{path:.*}", self.file)
        app.router.add_route("*", FILES_API + "/directories/{path:.*}", self.directory)

    def local(self, path: str) -> str:
        return os.path.join(self.double.root, path.lstrip("/"))

    def _check(self, endpoint: str, path: str) -> web.Response | None:
        parts = path.strip("/").split("/")
        if not path.startswith("/Volumes/") or len(parts) < 4 or ".." in parts:
            return self.double.error(endpoint, 400, "INVALID_PARAMETER_VALUE",
                                     f"{path} is not an absolute path in a volume (/Volumes/<catalog>/<schema>/"
                                     "<volume>/...)")
        if "/" + "/".join(parts[:4]) not in self.volumes:
            return self.double.error(endpoint, 404, "NOT_FOUND", f"Volume /{'/'.join(parts[:4])} does not exist.")
        return None

    async def file(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["path"]
        problem = self._check("fs/files", path)
        if problem is not None:
            return problem
        local = self.local(path)
        if request.method == "PUT":
            if not os.path.isdir(os.path.dirname(local)):
                return self.double.error("fs/files", 404, "NOT_FOUND", f"The parent directory of {path} does not "
                                                                        "exist.")
            if os.path.exists(local) and request.query.get("overwrite", "true") == "false":
                return self.double.error("fs/files", 409, "ALREADY_EXISTS", f"{path} already exists.")
            data = await request.read()
            with open(local, "wb") as handle:
                handle.write(data)
            return web.Response(status=204)
        if not os.path.isfile(local):
            if request.method == "HEAD":
                return web.Response(status=404)
            return self.double.error("fs/files", 404, "NOT_FOUND", f"The file {path} does not exist.")
        if request.method == "DELETE":
            os.remove(local)
            return web.Response(status=204)
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(os.path.getsize(local)),
                   "Last-Modified": email.utils.formatdate(os.path.getmtime(local), usegmt=True)}
        if request.method == "HEAD":
            return web.Response(status=200, headers=headers)
        if request.method == "GET":
            with open(local, "rb") as handle:
                return web.Response(status=200, body=handle.read(), headers=headers)
        return web.Response(status=405)

    async def directory(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["path"].rstrip("/")
        problem = self._check("fs/directories", path)
        if problem is not None:
            return problem
        local = self.local(path)
        if request.method == "PUT":
            if os.path.isfile(local):
                return self.double.error("fs/directories", 409, "ALREADY_EXISTS", f"{path} is a file.")
            os.makedirs(local, exist_ok=True)
            return web.Response(status=204)
        if not os.path.isdir(local):
            if request.method == "HEAD":
                return web.Response(status=404)
            return self.double.error("fs/directories", 404, "NOT_FOUND", f"The directory {path} does not exist.")
        if request.method == "HEAD":
            return web.Response(status=200)
        if request.method == "DELETE":
            if os.listdir(local):
                return self.double.error("fs/directories", 409, "DIRECTORY_NOT_EMPTY",
                                         f"The directory {path} is not empty.")
            os.rmdir(local)
            return web.Response(status=204)
        if request.method != "GET":
            return web.Response(status=405)
        names = sorted(os.listdir(local))
        size = min(int(request.query.get("page_size", "1000")), 1000)
        start = int(request.query.get("page_token", "0"))
        page: dict[str, Any] = {"contents": [self._entry(path, name) for name in names[start:start + size]]}
        if start + size < len(names):
            page["next_page_token"] = str(start + size)
        return self.double.answer("fs/directories", page)

    def _entry(self, folder: str, name: str) -> dict[str, Any]:
        local = os.path.join(self.local(folder), name)
        entry: dict[str, Any] = {"path": f"{folder}/{name}", "is_directory": os.path.isdir(local), "name": name,
                                 "last_modified": int(os.path.getmtime(local) * 1000)}
        if not entry["is_directory"]:
            entry["file_size"] = os.path.getsize(local)
        return entry
