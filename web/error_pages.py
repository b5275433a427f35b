"""One shape for errors: the app's error page, or RFC 9457 problem details under /api/."""

from __future__ import annotations

from flask import jsonify, render_template, request


def error_response(status: int, title: str, detail: str):
    if request.path.startswith("/api/"):
        response = jsonify(
            {
                "type": "about:blank",
                "title": title,
                "status": status,
                "detail": detail,
                "instance": request.path,
            }
        )
        response.status_code = status
        response.mimetype = "application/problem+json"
        return response
    return render_template("error.html", error={"error": title, "message": detail}), status
