"""How long redacting a 100 KB prompt takes (target: well under 50 ms).

The prompt mixes ordinary Python source, a .env file, YAML and JSON with a dozen planted secrets, the way a
prompt with repository context looks. Prints the median and best time over the runs, and the redaction count.

    python bench/bench_redact.py [--runs 50] [--size-kb 100]
"""

from __future__ import annotations

import argparse
import base64
import inspect
import os
import statistics
import tempfile
import time

_SECRETS_BLOCK = "\n".join(
    [
        "ANTHROPIC_API_KEY=sk-ant-api03-" + "Zx9Qw8Er7Ty6Ui5Op4As3Df2Gh1Jk0LmNb",
        "OPENAI_API_KEY=sk-proj-" + "Ab3dEf9hIjKlMnOpQrStUvWxYz0123456789",
        "aws_access_key_id = AKIA" + "Q3EXAMPLE7XYZ12A",
        "aws_secret_access_key = " + "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEK1",
        'db_url: "postgres://app:' + 'Tr0ub4dor3xyz@db.internal:5432/app"',
        '{"client_secret": "' + 'c9f1e2d3b4a5968778695a4b3c2d1e0f", "page": 2}',
        "token: ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8",
        "",
    ]
)


def build_prompt(size_bytes: int) -> str:
    """Ordinary source code from the standard library, with the secrets block repeated through it."""
    import email.utils
    import json.decoder
    import smtplib
    import urllib.request

    code = "\n".join(inspect.getsource(m) for m in (smtplib, urllib.request, json.decoder, email.utils))
    pieces: list[str] = []
    total = 0
    position = 0
    while total < size_bytes:
        chunk = code[position : position + 8_000] + "\n" + _SECRETS_BLOCK
        pieces.append(chunk)
        total += len(chunk)
        position = (position + 8_000) % max(len(code) - 8_000, 1)
    return "".join(pieces)[:size_bytes]


def _adversarial(size: int) -> dict[str, str]:
    """Inputs that would make a careless regex quadratic: long unbroken runs, many unterminated key blocks."""
    key_line = "-----BEGIN RSA PRIVATE KEY-----\n" + "A" * 60 + "\n"
    return {
        "one long base64 line": base64.b64encode(os.urandom(size * 3 // 4)).decode()[:size],
        "one repeated letter": "a" * size,
        "key names without values": ("password token key secret auth " * (size // 31 + 1))[:size],
        "BEGIN lines with no END": key_line * (size // len(key_line)),
        "sk- repeated": ("sk-" * (size // 3 + 1))[:size],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--size-kb", type=int, default=100)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as home:
        os.environ["AETHER_HOME"] = home  # the placeholder key file goes here, not in the real home
        from aetherflow.llm.redact import Redactor

        started = time.perf_counter()
        redactor = Redactor(known_secrets=["my-configured-key-0123456789"])
        redactor.redact_text("warm-up")
        setup_ms = (time.perf_counter() - started) * 1000
        prompt = build_prompt(args.size_kb * 1000)
        timings: list[float] = []
        cpu_timings: list[float] = []
        count = 0
        for _ in range(args.runs):
            started, cpu_started = time.perf_counter(), time.process_time()
            _, count = redactor.redact_text(prompt)
            timings.append((time.perf_counter() - started) * 1000)
            cpu_timings.append((time.process_time() - cpu_started) * 1000)

    print(f"prompt: {len(prompt):,} characters, {count} secrets redacted per pass")
    print(f"first Redactor (imports, compiles the rules, reads the key): {setup_ms:.1f} ms")
    print(
        f"redact_text over {args.runs} runs: median {statistics.median(timings):.1f} ms, "
        f"best {min(timings):.1f} ms, worst {max(timings):.1f} ms (target: well under 50 ms)"
    )
    # Wall time includes waiting for a core on a busy machine; CPU time is the work itself.
    print(f"CPU time: median {statistics.median(cpu_timings):.1f} ms; load average {os.getloadavg()[0]:.1f}")
    print("adversarial 100 KB inputs (CPU ms; every scan must stay linear):")
    for name, text in _adversarial(args.size_kb * 1000).items():
        started = time.process_time()
        redactor.redact_text(text)
        print(f"  {name:32s} {(time.process_time() - started) * 1000:7.1f}")


if __name__ == "__main__":
    main()
