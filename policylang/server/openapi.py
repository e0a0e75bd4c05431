"""The hand-written OpenAPI 3.0 document served at ``GET /openapi.json``.

Kept by hand (not generated from the handlers) so that it is the contract:
``tests/server`` checks that it covers every route and that the decision schema
lists exactly the fields of :class:`policylang.runtime.decision.Decision`, and
schemathesis fuzzes the server against it.
"""

from __future__ import annotations

from typing import Any

_OBJ_OR_NULL = {"type": "object", "nullable": True, "additionalProperties": True}


def _error_response(text: str) -> dict[str, Any]:
    return {
        "description": text,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def openapi_document(
    *, max_batch: int, max_body_bytes: int, auth: bool, version: str = "0.1.0"
) -> dict[str, Any]:
    errors = {
        "400": _error_response(
            "Malformed or ambiguous JSON: not UTF-8, a BOM, a duplicate key, "
            "NaN/Infinity, a lone surrogate, too deep (code `bad_json`)."
        ),
        "403": _error_response(
            "A Host this server does not answer for (code "
            "`host_not_allowed`) or a cross-origin page (code `cross_origin`)."
        ),
        "408": _error_response("The body did not arrive in time (code `body_timeout`)."),
        "431": _error_response("Too many or too large headers (code `headers_too_large`)."),
        "503": _error_response(
            "Not answered within the request deadline (code "
            "`deadline_exceeded`), or too many connections."
        ),
        "401": _error_response("Missing or wrong bearer token (code `unauthorized`)."),
        "413": _error_response(f"Body larger than {max_body_bytes} bytes (code `too_large`)."),
        "415": _error_response(
            "Content type is not application/json (code `unsupported_media_type`)."
        ),
        "422": _error_response("JSON of the wrong shape (code `invalid_body`)."),
    }
    secured: list[dict[str, list[str]]] = [{"bearerAuth": []}] if auth else []
    json_body = {"required": True, "content": {"application/json": {"schema": None}}}

    def body(ref: str) -> dict[str, Any]:
        b = {**json_body, "content": {"application/json": {"schema": {"$ref": ref}}}}
        return b

    def ok(ref: str, text: str) -> dict[str, Any]:
        return {"description": text, "content": {"application/json": {"schema": {"$ref": ref}}}}

    get_errors = {k: errors[k] for k in ("401", "403", "431", "503")}
    doc: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {
            "title": "policylang decision server",
            "version": version,
            "description": "Decide allow / deny / confirm for an AI agent's tool calls. "
            'Errors are JSON objects `{"error": {"code", "message"}}`. '
            "When the server has a bearer token, every endpoint except "
            "/healthz needs `Authorization: Bearer <token>`.",
        },
        "paths": {
            "/v1/decide": {
                "post": {
                    "operationId": "decide",
                    "summary": "Decide one tool call",
                    "requestBody": body("#/components/schemas/DecideRequest"),
                    "responses": {
                        "200": ok(
                            "#/components/schemas/Decision", "The decision (a deny is a 200 too)."
                        ),
                        **errors,
                    },
                    "security": secured,
                }
            },
            "/v1/decide/batch": {
                "post": {
                    "operationId": "decideBatch",
                    "summary": f"Decide up to {max_batch} tool calls, in order",
                    "requestBody": body("#/components/schemas/BatchRequest"),
                    "responses": {
                        "200": ok(
                            "#/components/schemas/BatchResponse",
                            "One decision per request, in order.",
                        ),
                        **errors,
                    },
                    "security": secured,
                }
            },
            "/v1/policies": {
                "get": {
                    "operationId": "listPolicies",
                    "summary": "The loaded policy: name, version, hash and tools",
                    "responses": {
                        "200": ok(
                            "#/components/schemas/Policies",
                            "The loaded policies (empty when none is loaded).",
                        ),
                        **get_errors,
                    },
                    "security": secured,
                }
            },
            "/healthz": {
                "get": {
                    "operationId": "healthz",
                    "summary": "Liveness: the process answers (no token needed)",
                    "responses": {"200": ok("#/components/schemas/Status", "Alive.")},
                    "security": [],
                }
            },
            "/readyz": {
                "get": {
                    "operationId": "readyz",
                    "summary": "Readiness: a policy is loaded",
                    "responses": {
                        "200": ok("#/components/schemas/Status", "A policy is loaded."),
                        "503": ok("#/components/schemas/Status", "No policy is loaded."),
                        **get_errors,
                    },
                    "security": secured,
                }
            },
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "summary": "Prometheus metrics (text exposition format 0.0.4)",
                    "responses": {
                        "200": {
                            "description": "Metrics.",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        },
                        **get_errors,
                    },
                    "security": secured,
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "responses": {
                        "200": {
                            "description": "The OpenAPI document.",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                        **get_errors,
                    },
                    "security": secured,
                }
            },
        },
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "DecideRequest": {
                    "type": "object",
                    "required": ["tool"],
                    "additionalProperties": False,
                    "properties": {
                        "tool": {
                            "type": "string",
                            "minLength": 1,
                            "description": "The tool's name, e.g. payments.send.",
                        },
                        "args": {**_OBJ_OR_NULL, "description": "The call's arguments."},
                        "principal": {**_OBJ_OR_NULL, "description": "Who is calling."},
                        "context": {
                            **_OBJ_OR_NULL,
                            "description": "What the runtime knows "
                            "(confidence, session id, now, ...).",
                        },
                    },
                },
                "BatchRequest": {
                    "type": "object",
                    "required": ["requests"],
                    "additionalProperties": False,
                    "properties": {
                        "requests": {
                            "type": "array",
                            "maxItems": max_batch,
                            "items": {"$ref": "#/components/schemas/DecideRequest"},
                        }
                    },
                },
                "BatchResponse": {
                    "type": "object",
                    "required": ["decisions"],
                    "properties": {
                        "decisions": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/Decision"},
                        }
                    },
                },
                "Decision": {
                    "type": "object",
                    "required": [
                        "effect",
                        "tool",
                        "code",
                        "reasons",
                        "rules",
                        "limits",
                        "errors",
                        "message",
                        "decision_id",
                        "policy",
                        "policy_hash",
                        "elapsed_us",
                    ],
                    "properties": {
                        "effect": {"type": "string", "enum": ["allow", "deny", "confirm"]},
                        "tool": {"type": "string"},
                        "code": {
                            "type": "string",
                            "description": "Why, as a stable word: allowed, denied, confirm, default_deny, "
                            "default_allow, rate_limited, invalid_request, unknown_tool, "
                            "evaluation_error, store_unavailable, no_policy, internal_error, "
                            "audit_unavailable.",
                        },
                        "reasons": {"type": "array", "items": {"type": "string"}},
                        "rules": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/RuleRef"},
                        },
                        "limits": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/LimitState"},
                        },
                        "errors": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/ErrorInfo"},
                        },
                        "message": {
                            "type": "string",
                            "description": "A sentence to hand back to the agent.",
                        },
                        "decision_id": {"type": "string"},
                        "policy": {"type": "string"},
                        "policy_version": {"type": "string", "nullable": True},
                        "policy_hash": {"type": "string"},
                        "at": {"type": "string", "format": "date-time", "nullable": True},
                        "elapsed_us": {"type": "number"},
                    },
                },
                "RuleRef": {
                    "type": "object",
                    "required": ["id", "effect", "location"],
                    "properties": {
                        "id": {"type": "string"},
                        "name": {"type": "string", "nullable": True},
                        "effect": {"type": "string", "enum": ["allow", "deny", "confirm"]},
                        "location": {"type": "string"},
                        "reason": {"type": "string", "nullable": True},
                    },
                },
                "LimitState": {
                    "type": "object",
                    "required": ["id", "used", "limit", "window_seconds"],
                    "properties": {
                        "id": {"type": "string"},
                        "key": {"type": "string", "nullable": True},
                        "used": {"type": "number"},
                        "limit": {"type": "number"},
                        "window_seconds": {"type": "number"},
                        "cost": {"type": "number"},
                        "exceeded": {"type": "boolean"},
                        "location": {"type": "string"},
                    },
                },
                "ErrorInfo": {
                    "type": "object",
                    "required": ["message"],
                    "properties": {
                        "rule": {"type": "string", "nullable": True},
                        "location": {"type": "string", "nullable": True},
                        "message": {"type": "string"},
                    },
                },
                "Policies": {
                    "type": "object",
                    "required": ["policies"],
                    "properties": {
                        "policies": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["name", "version", "hash", "tools"],
                                "properties": {
                                    "name": {"type": "string"},
                                    "version": {"type": "string", "nullable": True},
                                    "hash": {"type": "string"},
                                    "tools": {"type": "array", "items": {"type": "string"}},
                                },
                            },
                        }
                    },
                },
                "Status": {
                    "type": "object",
                    "required": ["status"],
                    "properties": {
                        "status": {"type": "string"},
                        "policy": {"type": "string", "nullable": True},
                    },
                },
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message"],
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                            },
                        }
                    },
                },
            },
        },
    }
    return doc
