"""The http step: one request through the net guard; status >= 400 fails the step."""

from __future__ import annotations

import json

from runs.engine.failures import StepFailed
from runs.engine.netguard import fetch
from runs.engine.nodes.base import StepContext, StepResult
from runs.engine.redaction import Redactor

TEXT_LIMIT = 1_000_000


def idempotency_key(ctx: StepContext) -> str:
    return f"{ctx.run_id}:{ctx.step_id}"


def run_http(ctx: StepContext) -> StepResult:
    config = ctx.config
    headers = {str(k): str(v) for k, v in (config.get("headers") or {}).items()}
    credential_headers = ctx.credential.headers() if ctx.credential is not None else {}
    headers.update(credential_headers)
    # The same key on every attempt of this step of this run: a server that honours it applies
    # the call once even when a worker died after sending it and the step ran again.
    if not any(name.lower() == "idempotency-key" for name in headers):
        headers["Idempotency-Key"] = idempotency_key(ctx)
    body = config.get("body")
    content = None
    if isinstance(body, dict | list):
        content = json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    elif body is not None:
        content = str(body).encode()
    response = fetch(
        config.get("method", "GET"),
        str(config["url"]),
        policy=ctx.net,
        headers=headers,
        content=content,
        timeout=float(config.get("timeout_s", 30)),
        # A redirect to another origin must not carry the credential there, whatever its name.
        credential_headers=credential_headers,
        transport=ctx.transport,
    )
    # Masked here, before the text is cut short, so that no secret the server sent back survives
    # in part; the service masks whatever the step returns once more (see runs.engine.redaction).
    hide = Redactor(ctx.credential.secrets() if ctx.credential is not None else ())
    is_json = "json" in response.headers.get("content-type", "")
    if is_json and response.extensions.get("truncated") and response.status_code < 400:
        # Text is kept cut short; JSON cut short is no JSON at all. (An error status says more.)
        raise StepFailed(
            f"{config.get('method', 'GET')} {config['url']}: the JSON response is larger than "
            f"{ctx.net.max_response_bytes} bytes (HTTP_MAX_RESPONSE_BYTES)",
            retryable=False,
        )
    text = hide(response.text)
    if is_json:
        try:
            parsed = hide(response.json())
        except ValueError:
            parsed = text[:TEXT_LIMIT]
    else:
        parsed = text[:TEXT_LIMIT]
    headers = hide(dict(response.headers))
    output = {"status": response.status_code, "headers": headers, "body": parsed}
    if response.status_code >= 400:
        raise StepFailed(
            f"HTTP {response.status_code} from {config['url']}",
            retryable=response.status_code >= 500 or response.status_code == 429,
            details={"status": response.status_code, "body": text[:500]},
        )
    return StepResult(output=output)
