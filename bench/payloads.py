"""A GitHub ``push`` delivery of about 2 KB, shaped like the real ones (octokit's examples)."""

from __future__ import annotations

import json
from typing import Any

SECRET = "bench-webhook-secret"  # a test secret for a loopback benchmark


def push_payload(index: int = 0) -> dict[str, Any]:
    sha = f"{index:040x}"
    user = {"name": "Codertocat", "email": "21031067+Codertocat@users.noreply.github.com", "username": "Codertocat"}
    return {
        "ref": "refs/heads/main",
        "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
        "after": sha,
        "repository": {
            "id": 186853002,
            "node_id": "MDEwOlJlcG9zaXRvcnkxODY4NTMwMDI=",
            "name": "Hello-World",
            "full_name": "Codertocat/Hello-World",
            "private": False,
            "owner": {"name": "Codertocat", "login": "Codertocat", "id": 21031067, "type": "User"},
            "html_url": "https://github.com/Codertocat/Hello-World",
            "description": None,
            "fork": False,
            "created_at": 1557933565,
            "updated_at": "2019-05-15T15:20:41Z",
            "pushed_at": 1557933657,
            "default_branch": "main",
            "stargazers_count": 0,
            "watchers_count": 0,
            "language": "Python",
            "size": 0,
        },
        "pusher": {"name": "Codertocat", "email": "21031067+Codertocat@users.noreply.github.com"},
        "sender": {"login": "Codertocat", "id": 21031067, "type": "User", "site_admin": False},
        "created": False,
        "deleted": False,
        "forced": False,
        "base_ref": None,
        "compare": "https://github.com/Codertocat/Hello-World/compare/6113728f27ae...f95f852bd8fc",
        "commits": [
            {
                "id": sha,
                "tree_id": "2c4b7a6a4b2d9ffb8b63d8fbb4d5b0c7c5c8e4b2",
                "distinct": True,
                "message": f"Update README.md (change {index})",
                "timestamp": "2019-05-15T15:20:30Z",
                "url": f"https://github.com/Codertocat/Hello-World/commit/{sha}",
                "author": user,
                "committer": user,
                "added": [],
                "removed": [],
                "modified": ["README.md", "src/app.py"],
            }
        ],
        "head_commit": {
            "id": sha,
            "message": f"Update README.md (change {index})",
            "timestamp": "2019-05-15T15:20:30Z",
            "author": user,
            "committer": user,
            "modified": ["README.md", "src/app.py"],
        },
        "stats": {"additions": 12, "deletions": 3, "files": 2},
    }


def push_bytes(index: int = 0) -> bytes:
    return json.dumps(push_payload(index)).encode()


def event_data(index: int = 0) -> dict[str, Any]:
    """The event data the github source makes of a delivery (headers, body)."""
    body = push_payload(index)
    body["X-GitHub-Event"] = "push"
    body["X-GitHub-Delivery"] = f"delivery-{index}"
    return {
        "headers": {
            "Content-Type": ["application/json"],
            "X-Github-Event": ["push"],
            "X-Github-Delivery": [f"delivery-{index}"],
            "User-Agent": ["GitHub-Hookshot/044aadd"],
        },
        "body": body,
    }
