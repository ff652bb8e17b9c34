"""The secret detectors behind `redact.Redactor`: compiled regexes plus checks that keep ordinary code unflagged.

Each Rule finds one kind of secret. Rules with a fixed prefix (`sk-ant-`, `AKIA`, `ghp_`) are precise on their own;
rules that rely on context (a key-like name before `=` or `:`) add an `accept` check on the match, which is where
the false-positive policy lives:

- a name counts as secret-like when its LAST word is one (`DB_PASSWORD`, `apiKey`, `client_secret`), so
  `password_field`, `token_type` and `max_tokens` are not; nor are pagination or tokenizer tokens (`NextToken`,
  `pad_token`);
- any value is dropped when it is short (< 4), a template (`${X}`, `{{x}}`, `<your key>`, `$API_KEY`), masked
  (`****`, `sk-...`), already a placeholder, a non-secret word ("none", "bearer") or prose (3+ words);
- in a .env line (`UPPER_NAME=value`) every other value is a secret;
- a quoted value elsewhere (JSON, YAML, TOML, Python, JS) must also look like a secret rather than a constant:
  letters with digits (`hunter2`) or three kinds of characters (`Pa$$Word`). `"send_message"`, `"X-Api-Key"`,
  `"[PAD]"`, regexes and colours stay. The price: an all-letter quoted password (`"swordfish"`) is missed;
- an unquoted value must not be code: no brackets, calls, commas, quotes or dotted names, and not an identifier
  (`token = tokens[0]`, `password = self.password`, `token: str`, `api_key: SecretStr` stay), except that a YAML
  `password: swordfish` is redacted. The price: `password = swordfish` in an INI file is missed.

Text often reaches a model as lines of a file with something in front (a grep result `path:12:`, a numbered or
unified diff): line-anchored rules look past such prefixes. A line range or grep result may also show the body of
a private key without its BEGIN line; full-width base64 key lines are redacted on their own as `key-material`,
which also catches public certificate bodies (harmless: a model has no use for them).

Measured over 140 MB of installed packages' source, docs and data (tests excluded), what is still flagged is
almost only documentation examples shaped like real secrets (`password='password1'`, example AWS keys), and, as
key-material, the lines of bundled CA certificate files.

Nothing here touches the network; detect-secrets contributes only its compiled regexes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

# An accept check sees the match (possibly made on the lower-cased text) and the original text.
Accept = Callable[[re.Match[str], str], bool]


@dataclass(frozen=True)
class Rule:
    """A detector: `regex` finds candidates; the secret is the first group of `groups` that took part in the
    match (the whole match when `groups` is empty); `accept`, when set, must approve the match.

    `lowered` rules are matched against the text lower-cased (same length, same offsets): that is how they are
    case-insensitive while still starting with a literal, which Python's regex engine scans for very fast.
    """

    kind: str
    regex: re.Pattern[str]
    groups: tuple[int, ...] = ()
    accept: Accept | None = None
    lowered: bool = False

    def span(self, match: re.Match[str], text: str) -> tuple[int, int] | None:
        """Where the secret lies in `text`, or None when the match is not a secret after all."""
        if self.accept is not None and not self.accept(match, text):
            return None
        for group in self.groups:
            if match.group(group) is not None:
                return match.span(group)
        return None if self.groups else match.span()


# --- checks on names and values -----------------------------------------------------------------------------------

_SECRET_WORDS = frozenset(
    "password passwd pwd pass passphrase secret token apikey credential credentials auth authorization "
    "privatekey secretkey accesskey accesstoken authtoken apitoken clientsecret".split()
)
# "key" alone is too common ("sort key", "primary_key"); it counts only after one of these.
_KEY_QUALIFIERS = frozenset(
    "api access secret private client encryption signing master auth account service subscription app admin "
    "session webhook".split()
)
_NAME_SUFFIXES = frozenset({"value", "base"})
# Tokens that are not credentials: pagination, idempotency and tokenizer vocabulary ("NextToken", "pad_token").
_HARMLESS_TOKEN_QUALIFIERS = frozenset(
    "next change continuation page pagination request idempotency cancellation sync resume per max min num end "
    "start stop eos bos pad unk sep cls mask special".split()
)
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
_NON_SECRET_VALUES = frozenset(
    "password passwd secret token none null nil true false yes no undefined empty changeme required optional "
    "basic bearer digest oauth oauth2 jwt enabled disabled redacted hidden example mypassword".split()
)
_TYPE_NAMES = frozenset(
    "str string bytes int integer float bool boolean any optional list dict tuple set object number bigint unknown "
    "never void symbol callable type none secretstr secretbytes path uuid datetime date".split()
)
_TEMPLATE = re.compile(
    r"^\$|\$\{|\$[A-Z_][A-Z0-9_]*\b|\{\{|\{[^}]*\}|^<|<[^>]*>|%\(|%s|^#|^process\.env|os\.environ|\[[^\]]*\]"
    r"|^\d+\.\d+$"
    r"|(?i:your[_\- ]|^(?:my|example|dummy|fake|sample)[_\-])"
)
_MASKED = re.compile(r"\*\*\*|\.\.\.|…|[xX]{4}")
_HEX_COLOUR = re.compile(r"#(?:[0-9a-fA-F]{3,4}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})")
_CODE_CHARS = re.compile(r"[()\[\]{},;\"']|:$")
_DOTTED_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
PLACEHOLDER_PREFIX = "«redacted:"
# The kind of base64 key lines found without their BEGIN line (they may be a public certificate's).
KEY_MATERIAL = "key-material"


@lru_cache(maxsize=4096)
def secret_name(name: str) -> bool:
    """True when a variable or key name says its value is a secret (judged by its last word)."""
    words = [w.lower() for w in _WORD.findall(name)]
    if len(words) > 1 and words[-1] in _NAME_SUFFIXES:
        words.pop()
    if not words:
        return False
    if words[-1] == "token" and len(words) > 1 and words[-2] in _HARMLESS_TOKEN_QUALIFIERS:
        return False
    if words[-1] in _SECRET_WORDS:
        return True
    return words[-1] == "key" and len(words) > 1 and words[-2] in _KEY_QUALIFIERS


def plausible_value(value: str) -> bool:
    """False for what cannot be a real secret: short, a template, masked, already redacted, a non-secret word,
    or prose ("Enter your password here")."""
    value = value.strip()
    if len(value) < 4 or value.startswith(PLACEHOLDER_PREFIX) or len(set(value)) <= 2:
        return False
    if value.lower() in _NON_SECRET_VALUES or _TEMPLATE.search(value) or _MASKED.search(value):
        return False
    return len(value.split()) < 3


def _char_classes(value: str) -> int:
    lower = any(c.islower() for c in value)
    upper = any(c.isupper() for c in value)
    digit = any(c.isdigit() for c in value)
    other = any(not c.isalnum() and c not in "-_. " for c in value)
    return lower + upper + digit + other


def quoted_secret(value: str) -> bool:
    """For a quoted value in code or config: a plausible value that also looks like a secret rather than a
    constant: letters with digits (`hunter2`, `s3cr3t`), or 3 kinds of characters (`Pa$$Word`). Identifier-like
    strings (`"send_message"`, `"X-Api-Key"`, `"[PAD]"`), regexes (backslashes) and colours stay."""
    if not plausible_value(value) or "\\" in value or _HEX_COLOUR.fullmatch(value.strip()):
        return False
    if "(" in value and ")" in value:  # code inside a string: `"Password:"),f?e.createElement("`
        return False
    has_digit = any(c.isdigit() for c in value)
    has_letter = any(c.isalpha() for c in value)
    return (has_digit and has_letter) or (len(value) >= 8 and _char_classes(value) >= 3)


def plausible_bare_value(value: str, separator: str, env_style: bool) -> bool:
    """For an unquoted value, which may also be code (see the module docstring)."""
    if not plausible_value(value) or _CODE_CHARS.search(value):
        return False
    if env_style:  # NAME=value with an upper-case name and no spaces: a .env line, not Python.
        return True
    if not _DOTTED_IDENTIFIER.fullmatch(value):
        return True  # p@ss!, 123456, s3cr3t-42: not an expression
    if "." in value:
        return False  # self.password, ctypes.c_int32: a reference
    if any(c.isdigit() for c in value):
        return "_" not in value  # hunter2 is a password; _async_v1_key is a variable
    # `password: swordfish` in YAML is a secret; `token: str`, `api_key: SecretStr`, `token: llama_token` are types.
    return separator == ":" and value.lower() not in _TYPE_NAMES and not value[0].isupper() and "_" not in value


def url_password(value: str) -> bool:
    """A URL password, unless it is a stand-in such as `user:pass@` or `org:repo@`."""
    if not plausible_value(value):
        return False
    return len(value) >= 8 or _char_classes(value) >= 2 or any(c.isdigit() for c in value)


def url_token(value: str) -> bool:
    """A token in a query string, unless it is a stand-in name (`?key=API_KEY`, `?key=login_id`)."""
    return plausible_value(value) and not (
        _DOTTED_IDENTIFIER.fullmatch(value) and not any(c.isdigit() for c in value)
    )


def looks_random(value: str) -> bool:
    """True for key-like strings: letters and digits mixed, not words joined by hyphens."""
    has_digit = any(c.isdigit() for c in value)
    has_upper = any(c.isupper() for c in value)
    has_lower = any(c.islower() for c in value)
    return has_digit and (has_upper or has_lower) and (has_upper and has_lower or len(value) >= 32)


def _mixed_base64(value: str) -> bool:
    """Random base64 (upper and lower case letters and digits), not a hex digest, a word or an identifier."""
    return any(c.isupper() for c in value) and any(c.islower() for c in value) and any(c.isdigit() for c in value)


def _original(match: re.Match[str], text: str, *groups: int) -> str:
    """The first participating group of `groups`, read from the original text (the match may be lower-cased)."""
    for group in groups:
        start, end = match.span(group)
        if start >= 0:
            return text[start:end]
    return ""


def _name_ending_at(text: str, end: int) -> str:
    """The name (letters, digits, `_`, `.`, `-`) that ends at `end`."""
    start = end
    while start > 0 and text[start - 1] in _NAME_CHARS:
        start -= 1
    return text[start:end]


def _check(group: int, test: Callable[[str], bool]) -> Accept:
    return lambda m, text: test(_original(m, text, group))


def _accept_quoted(m: re.Match[str], text: str) -> bool:
    name = _name_ending_at(text, m.end(1))
    return secret_name(name) and quoted_secret(_original(m, text, 2, 3))


def _accept_env(m: re.Match[str], text: str) -> bool:
    name = m.group(1)
    if not secret_name(name):
        return False
    if m.group(4) is None:
        value = _original(m, text, 2, 3)
        # An upper-case name is a .env or shell variable; a lower-case one is a keyword argument in code.
        return plausible_value(value) if name.isupper() else quoted_secret(value)
    return plausible_bare_value(m.group(4), "=", env_style=name.isupper())


def _accept_bare(m: re.Match[str], text: str) -> bool:
    return secret_name(m.group(1)) and plausible_bare_value(m.group(3), m.group(2), env_style=False)


# --- the rules, most specific first: when two rules find the same span, the earlier one names its kind -----------

_PEM_BEGIN = r"-----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----"
_PEM_END = r"-----END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----"
_AWS_SECRET = r"([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"
_KEY_WORD = r"(?:pass(?:word|wd|phrase)?|pwd|secret|token|key|auth(?:orization)?|credentials?)"
_QUOTED_VALUE = r"""[bruf]{0,2}(?:"((?:[^"\\\n]|\\.)*)"|'((?:[^'\\\n]|\\.)*)')"""
# What a tool may put before a line of a file, which line-anchored rules must look past: grep's `path:12:`,
# a line number (`cat -n`, the numbered diff a review model reads), a unified diff's `+`, `-` or space.
# Without it, `.env:3: DB_PASSWORD=hunter2` (a grep result) or `-DB_PASSWORD=hunter2` (a diff) went out as is.
# Written so that no two parts can match the same text (each alternative starts with a non-blank, and the
# possessive `++` never gives back), or scanning every line of a large prompt would backtrack for seconds.
_LINE_PREFIX = r"[ \t]*+(?:(?:[^\s:]++:\d++:|\d++[ \t][+\-]?|[+\-])[ \t]*+)?"
# One full line of a PEM (64 characters) or OpenSSH (70) private key body.
_KEY_LINE = r"(?:[A-Za-z0-9+/]{64}|[A-Za-z0-9+/]{70})"


def _prefixed(literal: str, rest: str) -> str:
    """`literal` at a word start, then `rest`. The look-behind comes after the literal so that the pattern still
    starts with it (a leading \\b would make the engine try every position instead of scanning for the literal)."""
    escaped = re.escape(literal)
    return rf"{escaped}(?<![A-Za-z0-9_]{escaped}){rest}"


def _token_rules() -> list[Rule]:
    """Rules that recognise a secret by its own format (prefix, length, alphabet)."""
    c = re.compile
    key = r"[A-Za-z0-9_\-]"
    return [
        # The body between BEGIN and END must look like key material (base64, PEM headers, raw or \n-escaped
        # newlines), so that code mentioning both markers (`START = "-----BEGIN ..."`) is left alone. It cannot
        # cross another "-----" marker, which keeps the scan linear when END lines are missing.
        Rule("private-key", c(rf"{_PEM_BEGIN}(?:[A-Za-z0-9+/=:,.() \t\r\n]|-(?!----)|\\[rn])*?{_PEM_END}"),
             accept=_has_key_material),
        # A key cut off before its END line: redact the base64 lines that follow.
        Rule("private-key", c(rf"{_PEM_BEGIN}(?:[A-Za-z0-9+/=\r\n]|\\[rn]){{40,}}")),
        # Key lines without their BEGIN line: a line range read from the middle of a key file, a grep result, an
        # index chunk cut inside the key. Each full-width base64 line mixing cases and digits is key material;
        # so is a short last line after one (padded, or followed by the END line). Certificate bodies match too,
        # which costs nothing: a model has no use for them. (The pre-commit scan ignores this kind.)
        Rule(KEY_MATERIAL, c(rf"(?m)^{_LINE_PREFIX}({_KEY_LINE})[ \t]*\r?$"), (1,), _check(1, _mixed_base64)),
        Rule(KEY_MATERIAL, c(rf"(?m)^{_LINE_PREFIX}({_KEY_LINE})[ \t]*\r?\n{_LINE_PREFIX}"
                             r"([A-Za-z0-9+/]{2,69}(?:={1,2}|(?=[ \t]*\r?\n[ \t]*-----END)))[ \t]*\r?$"),
             (2,), _check(1, _mixed_base64)),
        Rule("anthropic-api-key", c(_prefixed("sk-ant-", rf"{key}{{20,}}"))),
        Rule("deepseek-api-key", c(_prefixed("sk-", r"[a-f0-9]{32}(?![A-Za-z0-9_\-])"))),
        Rule("openai-api-key", c(_prefixed("sk-", rf"(?:proj-|svcacct-|admin-)?({key}{{20,}})")), (0,),
             _check(1, looks_random)),
        Rule("google-api-key", c(_prefixed("AIza", rf"{key}{{35}}(?!{key})"))),
        Rule("groq-api-key", c(_prefixed("gsk_", r"[A-Za-z0-9]{40,}"))),
        Rule("mistral-api-key", c(r"mistral\w*[\"']?[ \t]*[:=][ \t]*[\"']?([a-z0-9]{32})(?![a-z0-9])"), (1,),
             lowered=True),
        *(Rule("aws-access-key", c(_prefixed(prefix, rf"[A-Z0-9]{{{20 - len(prefix)}}}\b")))
          for prefix in ("AKIA", "ASIA", "ABIA", "ACCA", "A3T")),
        Rule("aws-secret-key", c(r"aws.{0,20}?(?:secret|sk|key|pwd|pw|password|pass|token).{0,20}?[:=,][ \t]*"
                                 r"[\"']?([a-z0-9/+=]{40})(?![a-z0-9/+=])"), (1,), lowered=True),
        # A credentials CSV or a one-line pair: the 40-character secret right after its access key id.
        *(Rule("aws-secret-key", c(_prefixed(prefix, rf"[A-Z0-9]{{16}}[\s,;:|\"'=]+{_AWS_SECRET}")), (1,))
          for prefix in ("AKIA", "ASIA")),
        Rule("github-token", c(_prefixed("gh", r"[pousr]_[A-Za-z0-9]{36,255}\b"))),
        Rule("github-token", c(_prefixed("github_pat_", r"[A-Za-z0-9_]{22,255}"))),
        Rule("slack-token", c(_prefixed("xox", r"[abposre]-[A-Za-z0-9\-]{10,}"))),
        Rule("slack-token", c(_prefixed("xapp-", r"\d-[A-Z0-9]+-\d+-[a-z0-9]+"))),
        Rule("slack-webhook", c(r"hooks\.slack\.com/services/(T[A-Za-z0-9_]+/B[A-Za-z0-9_]+/[A-Za-z0-9_]+)"), (1,)),
        Rule("npm-token", c(r"_authToken[ \t]*=[ \t]*[\"']?([^\s\"']+)"), (1,), _check(1, plausible_value)),
        Rule("npm-token", c(_prefixed("npm_", r"[A-Za-z0-9]{36}\b"))),
        *(Rule("stripe-key", c(_prefixed(prefix, r"[A-Za-z0-9]{10,}")))
          for prefix in ("sk_live_", "rk_live_", "sk_test_", "rk_test_")),
        Rule("stripe-key", c(_prefixed("whsec_", r"[A-Za-z0-9]{24,}"))),
        Rule("jwt", c(_prefixed("eyJ", r"[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*"))),
    ]


def _context_rules() -> list[Rule]:
    """Rules that recognise a secret by what surrounds it (a URL, a header, a key-like name), not by its format."""
    c = re.compile
    return [
        Rule("url-password", c(r"://[^\s:/?#@'\"<>\[\],]+:([^\s/?#@'\"<>\[\],]+)@"), (1,), _check(1, url_password)),
        Rule("url-token", c(r"[?&;](?:access_token|refresh_token|id_token|auth_token|token|api_key|apikey|api-key|key|"
                            r"client_secret|secret|password|passwd|sig|signature|x-amz-signature|x-amz-credential|"
                            r"x-amz-security-token)=([^&\s#\"'<>\\`]+)"), (1,), _check(1, url_token),
             lowered=True),
        *(Rule("bearer-token", c(rf"{word}[ \t]+([a-z0-9_\-.=+/~]{{20,}})"), (1,), _check(1, looks_random),
               lowered=True) for word in ("bearer", "basic", "token")),
        # .env lines: NAME=value, NAME="value", export NAME='value'.
        Rule("secret-assignment", c(rf"(?m)^{_LINE_PREFIX}(?:export[ \t]+)?([A-Za-z_][A-Za-z0-9_.\-]*)="
                                    r"(?:\"((?:[^\"\\\n]|\\.)*)\"|'([^'\n]*)'|([^\s#'\"][^\s#]*))"),
             (2, 3, 4), _accept_env),
        # JSON, YAML, TOML, Python, JS: a secret-like name (its last word found here, the rest read backwards by
        # the check), an optional type annotation, then a quoted value.
        Rule("secret-assignment", c(rf"({_KEY_WORD})[\"']?(?:[ \t]*:[ \t]*[a-z_][\w.\[\], |]*?)?"
                                    rf"[ \t]*(?:=>|:=|:|=)[ \t]*{_QUOTED_VALUE}"), (2, 3), _accept_quoted,
             lowered=True),
        # YAML, INI and TOML-like lines with an unquoted value.
        Rule("secret-assignment", c(rf"(?m)^{_LINE_PREFIX}(?:-[ \t]+)?[\"']?([A-Za-z_][\w.\-]*)[\"']?[ \t]*"
                                    r"([:=])[ \t]*([^\s#'\"][^\s#]*)[ \t]*(?:#.*)?$"), (3,), _accept_bare),
    ]


@lru_cache(maxsize=1)
def builtin_rules() -> tuple[Rule, ...]:
    """All rules, compiled once: token formats (ours, then detect-secrets'), then the contextual rules, so that a
    token found by both is named by its format."""
    return (*_token_rules(), *_detect_secrets_rules(), *_context_rules())


# detect-secrets plugins whose regexes add formats the rules above do not cover. Its other plugins are either
# covered above, too noisy on code (high-entropy strings, keywords, Artifactory), or not secrets (public IPs).
_DETECT_SECRETS_PLUGINS = {
    "gitlab_token": "GitLabTokenDetector",
    "pypi_token": "PypiTokenDetector",
    "sendgrid": "SendGridDetector",
    "twilio": "TwilioKeyDetector",
    "discord": "DiscordBotTokenDetector",
    "telegram_token": "TelegramBotTokenDetector",
    "mailchimp": "MailchimpDetector",
    "azure_storage_key": "AzureStorageKeyDetector",
    "square_oauth": "SquareOAuthDetector",
}


_KEY_MATERIAL = re.compile(r"[A-Za-z0-9+/]{16}")


def _has_key_material(match: re.Match[str], text: str) -> bool:
    # A placeholder such as "-----BEGIN RSA PRIVATE KEY-----\n...\n-----END RSA PRIVATE KEY-----" has none.
    return _KEY_MATERIAL.search(match.group()) is not None


def _standalone(match: re.Match[str], text: str) -> bool:
    """The match is a whole token (these regexes have no boundaries of their own) and not a masked example such
    as "ACxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"."""
    start, end = match.span()
    before = text[start - 1] if start > 0 else " "
    after = text[end] if end < len(text) else " "
    return not before.isalnum() and not after.isalnum() and len(set(match.group())) > 8


def _detect_secrets_rules() -> list[Rule]:
    """Rules from detect-secrets' regex plugins. Only their patterns are used: nothing is verified online."""
    import importlib

    rules: list[Rule] = []
    for module_name, class_name in _DETECT_SECRETS_PLUGINS.items():
        module = importlib.import_module(f"detect_secrets.plugins.{module_name}")
        plugin = getattr(module, class_name)()
        kind = re.sub(r"[^a-z0-9]+", "-", plugin.secret_type.lower()).strip("-")
        # The whole match is the token: these plugins' groups only capture prefixes such as "glpat".
        rules.extend(Rule(kind, regex, accept=_standalone) for regex in plugin.denylist)
    return rules
