#!/usr/bin/env bash
# One command from a fresh clone: install AetherFlow with the embedded local model, copy the demo app into a
# new git repository, index it, and run a request end to end on the embedded defaults (no API key needed).
# Set AETHER_DEMO_DIR to choose where the demo repository goes; provider keys in the environment are used if set.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

if [ ! -x .venv/bin/aether ]; then
  echo "==> Installing AetherFlow into $root/.venv (the first install compiles llama-cpp-python: ~5 min)"
  python3 -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".[local,dev]"
fi
aether="$root/.venv/bin/aether"

demo="${AETHER_DEMO_DIR:-$(mktemp -d)/demo-app}"
echo "==> Demo repository: $demo"
mkdir -p "$demo"
cp -R examples/demo-app/. "$demo/"
cd "$demo"

# A real coder model when there is one (AETHER_CODER_GGUF, else the largest Qwen2.5-Coder GGUF that
# ../shared/models/fetch-coder-gguf.sh left in ~/.cache/aether-models); without one, the bundled 135M demo model.
coder="${AETHER_CODER_GGUF:-}"
if [ -z "$coder" ]; then
  coder="$(ls -S "${XDG_CACHE_HOME:-$HOME/.cache}"/aether-models/qwen2.5-coder-*-instruct-q4_k_m.gguf 2>/dev/null | head -1 || true)"
fi
if [ -n "$coder" ] && [ -f "$coder" ]; then
  echo "==> Local coder model: $coder"
  cat >> aetherflow.toml <<TOML
[models.coder-local]
model = "local/qwen2.5-coder"
gguf = "$coder"
local = true
context_window = 8192
capabilities = ["json_schema", "streaming"]
price = { input = 0.0, output = 0.0 }

[gateway]
local_alias = "coder-local"
TOML
else
  echo "==> No coder model found: using the bundled SmolLM2-135M, a tiny demo model that rarely completes a task."
  echo "    For real results run ../shared/models/fetch-coder-gguf.sh 1.5b (or set AETHER_CODER_GGUF), then again."
fi
if [ ! -d .git ]; then
  git init -q
  git add -A
  git -c user.name="AetherFlow demo" -c user.email="demo@example.invalid" commit -qm "Demo app"
fi

# Offline machines: use the embedding model shipped beside the project when there is one; elsewhere fastembed
# downloads it on first use.
shared_model="$root/../shared/models/all-MiniLM-L6-v2-onnx"
if [ -z "${AETHER_INDEX__MODEL_PATH:-}" ] && [ -d "$shared_model" ]; then
  export AETHER_INDEX__MODEL_PATH="$shared_model"
fi

# The demo's aetherflow.toml names its test command. A repository's file can point models at other hosts or add
# commands, so AetherFlow honours those keys only once you trust it; you have read this one, so trust it.
"$aether" trust
"$aether" doctor || true
echo "==> Indexing"
"$aether" index
echo "==> Searching"
"$aether" search "create a session token" -k 3
echo "==> Running a request (review is automatic here: --yes applies what the models produce)"
"$aether" run "Add a logout_all(username) function to app/auth.py that ends every session of that user" --yes --no-tui
echo "==> What changed"
git --no-pager diff --stat
"$aether" stats
