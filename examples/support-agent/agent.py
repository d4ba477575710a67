#!/usr/bin/env python3
"""A tiny FluxLoop agent speaking the `process` runner protocol.

fluxloop starts this script once per run, writes one JSON line to stdin:

    {"run_id": "...", "input_text": "...", "context": {"iteration": 0, "persona": "...",
     "scenario": "...", "metadata": {...}}}

and reads the last JSON object line printed on stdout as the result:

    {"success": true, "output": "...", "token_usage": {...}}

(`duration_ms`, `error`: {"message"} and `metadata` are optional fields too.)

Anything else on stdout is ignored; stderr is kept for failure reports.
Replace `answer()` with a call to your own agent.
"""

import json
import sys

CANNED = [
    (("refund", "money back"), "I can help with a refund. Could you share your order number?"),
    (("order", "package", "deliver", "shipping"), "Let me look up your order. What is the order number?"),
    (("password", "login", "sign in", "account"), "You can reset your password from the sign-in page under 'Forgot password'."),
    (("cancel",), "I can cancel that for you. Which subscription or order should I cancel?"),
]


def answer(text: str) -> str:
    lowered = text.lower()
    for words, reply in CANNED:
        if any(w in lowered for w in words):
            return reply
    return "Thanks for reaching out! Could you tell me a bit more about what you need?"


def main() -> None:
    request = json.loads(sys.stdin.readline() or "{}")
    text = request.get("input_text", "")
    print(f"[agent] run {request.get('run_id')}: {text[:60]!r}", file=sys.stderr)
    output = answer(text)
    result = {
        "success": True,
        "output": output,
        "token_usage": {
            "input_tokens": len(text.split()),
            "output_tokens": len(output.split()),
            "total_tokens": len(text.split()) + len(output.split()),
        },
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
