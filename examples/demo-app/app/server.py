"""A minimal WSGI application exposing login, logout and the current user as JSON."""

import json
from wsgiref.simple_server import make_server

from app import auth


def _json(start_response, status: str, body: dict) -> list[bytes]:
    payload = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
    return [payload]


def _read_json(environ) -> dict:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    return json.loads(environ["wsgi.input"].read(length) or b"{}")


def application(environ, start_response):
    """Route /login (POST), /logout (POST) and /me (GET)."""
    path, method = environ.get("PATH_INFO", "/"), environ.get("REQUEST_METHOD", "GET")
    token = environ.get("HTTP_AUTHORIZATION", "").removeprefix("Bearer ")
    try:
        if path == "/login" and method == "POST":
            data = _read_json(environ)
            return _json(start_response, "200 OK", {"token": auth.login(data["username"], data["password"])})
        if path == "/logout" and method == "POST":
            auth.logout(token)
            return _json(start_response, "200 OK", {"ok": True})
        if path == "/me" and method == "GET":
            user = auth.current_user(token)
            return _json(start_response, "200 OK", {"username": user.username, "admin": user.is_admin})
    except auth.AuthError as exc:
        return _json(start_response, "401 Unauthorized", {"error": str(exc)})
    return _json(start_response, "404 Not Found", {"error": "not found"})


if __name__ == "__main__":
    auth.register("admin", "change-me-now", is_admin=True)
    with make_server("127.0.0.1", 8000, application) as server:
        print("Serving on http://127.0.0.1:8000")
        server.serve_forever()
