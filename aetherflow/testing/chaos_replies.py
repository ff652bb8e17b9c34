"""What the chaos model says (see chaos.py): plans, tool calls and text-protocol replies, plausible and hostile.

Plans are valid, broken as a graph (cycles, self and unknown dependencies, duplicate ids, unknown agents), broken
against the schema (unknown types, missing fields, huge descriptions, too many tasks), not JSON at all, or a tool
call nobody offered. Tool calls
make real edits copied from the repository's files, read, and aim at hostile paths (escapes, absolute paths outside,
`~`, NUL, Windows forms, symbolic links, protected files), call unknown tools, send wrong or missing arguments, or
megabytes of content. Text-protocol replies carry SEARCH/REPLACE blocks, valid and mangled, and READ requests.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aetherflow.testing.script import Reply, ToolCallSpec

TASK_TYPES = ["module_generation", "local_refactor", "analysis", "brainstorm", "validation", "debugging",
              "documentation", "review"]
AGENTS = ["coder", "editor", "analyst", "prototyper", "verifier", "reasoner"]
# Paths that are refused before any file is touched, whatever the world: escapes, home, NUL, Windows forms.
ESCAPES = ["../../etc/passwd", "../chaos-escape.txt", "../../chaos-escape.txt", "../../../chaos-escape.txt",
           "../../../../chaos-escape.txt", "a/../../chaos-escape.txt", "~/.bashrc", "~/.ssh/id_rsa", "~root/x",
           "..\\..\\chaos-escape.txt", "app\\..\\..\\..\\chaos-escape.txt", "app/\0evil.py", "C:\\Windows\\x.txt",
           "", " ", ".", "app/", "app"]
PROTECTED = [".git/config", ".git/hooks/pre-commit", "./.git/HEAD", ".GIT/config", "app/../.git/config",
             "aetherflow.toml", ".aetherflow/ledger.sqlite", ".github/workflows/ci.yml", ".gitignore", ".envrc",
             ".pre-commit-config.yaml", ".husky/pre-commit", ".gitattributes"]
# What every write aimed at a hostile path carries: found anywhere but the run's own records, it landed.
HOSTILE_MARK = "pwned by chaos\n"
UNKNOWN_TOOLS = ["run_shell", "bash", "exec", "http_get", "write_file", "read_file; rm -rf /", "", "x" * 300]
RAW_ARGUMENTS = ["", "{", "null", "[1, 2]", '{"path": "app/auth.py"', "not json at all", '{"path": "\\ud800.py"}',
                 '{"path": "app/auth.py", "path": "../../x"}']


@dataclass(frozen=True)
class ChaosWorld:
    """What plausible and hostile replies aim at.

    `files`: repository-relative path -> text as the user has it (real SEARCH text comes from here). `outside`:
    absolute paths of files outside the repository (a fake home, a sibling folder); writes aimed there must be
    refused. `links`: names of symbolic links inside the repository that point outside it.
    """

    files: dict[str, str]
    outside: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)


class ReplyMaker:
    """Builds replies for one world; every choice comes from the `rng` passed in (the caller's lane)."""

    def __init__(self, world: ChaosWorld, huge_chars: int) -> None:
        self.world = world
        self.huge_chars = huge_chars
        self._python = sorted(p for p in world.files if p.endswith(".py") and world.files[p].strip())

    # ---- plans --------------------------------------------------------------------------------------------

    def plan(self, rng: random.Random) -> tuple[str, Reply]:
        """A reply to a JSON-mode (planner) request."""
        roll = rng.random()
        if roll < 0.55:
            return "plan_valid", Reply(json=self._valid_plan(rng))
        if roll < 0.68:
            return "plan_broken_graph", Reply(json=self._broken_plan(rng))
        if roll < 0.78:
            return "plan_schema_error", Reply(json=self._schema_error_plan(rng))
        if roll < 0.90:
            plan = json.dumps(self._valid_plan(rng))
            text = rng.choice([plan[: rng.randrange(1, len(plan))], "Sure! Here is the plan you asked for.",
                               f"```json\n{plan}\n```", "[]", "null", "NaN", plan + "\n}"])
            return "plan_invalid_json", Reply(text=text)
        if roll < 0.93:
            # No tool was offered, yet some models (or a provider's JSON mode built on a forced tool call) answer
            # with one: a reply without a plan.
            return "plan_tool_call", Reply(tool_calls=[ToolCallSpec(name="json_tool_call", arguments={"plan": {}})])
        return "empty", Reply(text="")

    def _task(self, rng: random.Random, task_id: str, earlier: list[str]) -> dict[str, Any]:
        fmt = rng.choices(["edits", "text", "json"], [6, 3, 1])[0]
        task: dict[str, Any] = {
            "id": task_id, "type": rng.choice(TASK_TYPES),
            "description": f"Chaos subtask {task_id}: " + rng.choice(
                ["add a docstring to a helper", "tidy the login code", "report what the server module does",
                 "create a small helper module", "rename a variable", "delete dead code"]),
            "expected_output": {"format": fmt, "constraints": []},
            "depends_on": rng.sample(earlier, rng.randrange(len(earlier) + 1)) if earlier else [],
            "fallback_strategy": rng.choice([["fail"], ["retry_same_agent", "fail"], ["next_agent", "fail"],
                                             ["simplify_and_retry", "fail"]]),
            "complexity": round(rng.random(), 2),
        }
        if rng.random() < 0.3:
            task["agent"] = rng.choice(AGENTS)
        if rng.random() < 0.2:
            task["context_files"] = rng.sample(sorted(self.world.files) + ["../../etc/passwd", "~/.ssh/id_rsa"], 2)
        return task

    def _valid_plan(self, rng: random.Random) -> dict[str, Any]:
        ids = rng.sample(["a", "b", "c", "t1", "t2", "fix.1", "x_y"], rng.choices([1, 2, 3], [3, 2, 1])[0])
        tasks = [self._task(rng, task_id, ids[:index]) for index, task_id in enumerate(ids)]
        return {"summary": "A chaos plan.", "tasks": tasks}

    def _broken_plan(self, rng: random.Random) -> dict[str, Any]:
        """Valid JSON and schema, wrong as a graph or vocabulary: what check_plan must catch."""
        plan = self._valid_plan(rng)
        tasks = plan["tasks"]
        flaw = rng.randrange(5)
        if flaw == 0 and len(tasks) > 1:
            tasks[0]["depends_on"], tasks[-1]["depends_on"] = [tasks[-1]["id"]], [tasks[0]["id"]]  # a cycle
        elif flaw == 1:
            tasks[0]["depends_on"] = [tasks[0]["id"]]
        elif flaw == 2:
            tasks[-1]["depends_on"] = ["ghost"]
        elif flaw == 3:
            tasks.append(dict(tasks[0]))  # a duplicate id
        else:
            tasks[0]["agent"] = rng.choice(["root-shell", "hacker"])
        return plan

    def _schema_error_plan(self, rng: random.Random) -> Any:
        plan = self._valid_plan(rng)
        flaw = rng.randrange(7)
        if flaw == 0:
            plan["tasks"][0]["type"] = "quantum_refactor"
        elif flaw == 1:
            del plan["tasks"][0]["description"]
        elif flaw == 2:
            plan["tasks"][0]["description"] = "Do it. " * rng.choice([400, 150_000])  # 2.8 kB or about 1 MB
        elif flaw == 3:
            plan["tasks"] = []
        elif flaw == 4:
            plan["tasks"] = [dict(plan["tasks"][0], id=f"t{i}") for i in range(40)]
        elif flaw == 5:
            plan["tasks"][0]["id"] = "../../x"
        else:
            plan = {"tasks": "all of them", "summary": 42}
        return plan

    # ---- agents with tools --------------------------------------------------------------------------------

    def tool_reply(self, rng: random.Random, offered: list[str]) -> tuple[str, Reply]:
        """A reply to an agent offered the tools `offered`."""
        roll = rng.random()
        if roll < 0.26:
            return "tool_final_text", Reply(text=rng.choice(["Done: the change is made.", "", "DONE"]))
        if roll < 0.30:
            return "tool_text_blocks", Reply(text=self._blocks_text(rng))
        kind, calls = self._calls(rng, offered, roll)
        if rng.random() < 0.05:
            more_kind, more = self._calls(rng, offered, rng.random())
            kind, calls = f"{kind}+more", calls + more
        return kind, Reply(tool_calls=calls)

    def _calls(self, rng: random.Random, offered: list[str], roll: float) -> tuple[str, list[ToolCallSpec]]:
        if roll < 0.46:
            return "tool_edit", [self._edit_call(rng)]
        if roll < 0.52:
            return "tool_create", [ToolCallSpec(name="create_file", arguments=self._new_file(rng))]
        if roll < 0.60:
            return "tool_read", [self._read_call(rng)]
        if roll < 0.76:
            return "tool_hostile_write", [self._hostile_write(rng)]
        if roll < 0.81:
            return "tool_hostile_read", [self._hostile_read(rng)]
        if roll < 0.85:
            absent = [n for n in ("delete_file", "create_file", "run_check", "list_dir") if n not in offered]
            name = rng.choice(UNKNOWN_TOOLS + absent)
            return "tool_unknown", [ToolCallSpec(name=name, arguments={"command": "cat ~/.ssh/id_rsa"})]
        if roll < 0.91:
            return "tool_bad_arguments", [self._bad_arguments(rng, offered)]
        if roll < 0.93:
            target = rng.choice(sorted(self.world.files))  # the user's staged, unstaged and untracked files too
            return "tool_delete", [ToolCallSpec(name="delete_file", arguments={"path": target})]
        if roll < 0.996:
            return "tool_check", [ToolCallSpec(name="run_check", arguments={"name": rng.choice(["tests", "lint"])})]
        # Rare: every later step of the subtask sends, counts and scans the megabytes again (seconds each).
        return "tool_huge", [self._huge_call(rng)]

    def _snippet(self, rng: random.Random) -> tuple[str, str]:
        """A real file and 1 to 3 consecutive non-blank lines of it, as the model would copy them."""
        path = rng.choice(self._python)
        lines = self.world.files[path].splitlines(keepends=True)
        start = rng.randrange(len(lines))
        chosen = [line for line in lines[start : start + rng.randint(1, 3)] if line.strip()] or [lines[start]]
        return path, "".join(chosen)

    def _edit_call(self, rng: random.Random) -> ToolCallSpec:
        path, search = self._snippet(rng)
        flavour = rng.randrange(5)
        if flavour == 0:
            replace = search.rstrip("\n") + "  # chaos edit\n"
        elif flavour == 1:
            replace = "def broken(:\n"  # a syntax error: the executor's fix round
        elif flavour == 2:
            search, replace = "def nowhere_to_be_found():\n", "pass\n"
        elif flavour == 3:
            replace = search.replace("    ", "\t")
        else:
            replace = ""
        return ToolCallSpec(name="edit_file", arguments={"path": path, "search": search, "replace": replace})

    def _new_file(self, rng: random.Random) -> dict[str, str]:
        # Existing files (refused), then names that trip naive tooling: spaces, non-ASCII (git quotes it), a
        # newline, a leading dash (a git option if passed without "--"), a very deep or very long name.
        name = rng.choice(["app/chaos_helper.py", "app/sub/dir/chaos.py", "notes/chaos.md", "app/auth.py",
                           "notes/todo-list.md", "README.md", "app/chaos bad name.py", "app/ünïcode.py",
                           "app/new\nline.py", "-n.py", "--output=x.txt", "app/" + "d/" * 60 + "deep.py",
                           "app/" + "n" * 300 + ".py"])
        content = rng.choice(["VALUE = 1\n", "def f(:\n", "# notes\r\nline two\r\n", "x = '\u2028'\n",
                              "bin\x00ary\n", "no newline at the end"])
        return {"path": name, "content": content}

    def _read_call(self, rng: random.Random) -> ToolCallSpec:
        pick = rng.randrange(4)
        if pick == 0:
            return ToolCallSpec(name="read_file", arguments={"path": rng.choice(sorted(self.world.files))})
        if pick == 1:
            return ToolCallSpec(name="read_file", arguments={"path": rng.choice(self._python), "start_line": 2,
                                                             "end_line": rng.choice([1, 5, 10**9])})
        if pick == 2:
            return ToolCallSpec(name="list_dir", arguments={"path": rng.choice([".", "app", "notes", "nowhere"])})
        return ToolCallSpec(name="grep", arguments={"pattern": rng.choice(["def ", "(unclosed", "token", ".*" * 50])})

    def _hostile_path(self, rng: random.Random, *, for_write: bool) -> str:
        links = [f"{link}/{leaf}" for link in self.world.links for leaf in (".bashrc", "chaos-new.txt", "")]
        pool = ESCAPES + PROTECTED + list(self.world.outside) + links
        if not for_write:
            pool += ["/etc/passwd", "/etc/hostname", "/proc/self/environ"]
        return rng.choice(pool)

    def _hostile_write(self, rng: random.Random) -> ToolCallSpec:
        path = self._hostile_path(rng, for_write=True)
        name = rng.choices(["create_file", "edit_file", "delete_file"], [5, 3, 2])[0]
        arguments: dict[str, Any] = {"path": path}
        if name == "create_file":
            arguments["content"] = HOSTILE_MARK
        elif name == "edit_file":
            arguments.update(search=rng.choice(["", "export", "[core]"]), replace=HOSTILE_MARK)
        return ToolCallSpec(name=name, arguments=arguments)

    def _hostile_read(self, rng: random.Random) -> ToolCallSpec:
        path = self._hostile_path(rng, for_write=False)
        name = rng.choice(["read_file", "list_dir", "grep"])
        if name == "grep":
            return ToolCallSpec(name=name, arguments={"pattern": "PRIVATE|secret", "path_glob": path})
        return ToolCallSpec(name=name, arguments={"path": path})

    def _bad_arguments(self, rng: random.Random, offered: list[str]) -> ToolCallSpec:
        name = rng.choice(offered or ["read_file"])
        pick = rng.randrange(4)
        if pick == 0:
            return ToolCallSpec(name=name, arguments=rng.choice(RAW_ARGUMENTS))
        if pick == 1:
            return ToolCallSpec(name=name, arguments={})
        if pick == 2:
            value: Any = rng.choice([123, ["app/auth.py"], None, {"a": 1}, True, -5, 10**30, "x" * 5000])
            return ToolCallSpec(name=name, arguments={"path": value, "start_line": value, "content": value,
                                                      "pattern": value, "name": value, "search": value})
        return ToolCallSpec(name=name, arguments={"path": "app/auth.py", "start_line": "abc", "k": 0})

    def _huge_size(self, rng: random.Random) -> int:
        """Between a tenth of `huge_chars` and all of it, log-uniformly (mostly hundreds of kilobytes)."""
        low = max(1, self.huge_chars // 10)
        return int(low * (self.huge_chars / low) ** rng.random())

    def _huge_text(self, rng: random.Random) -> str:
        """Megabytes of varied lines: a stream of identical chunks would only meet LiteLLM's repetition guard
        (that case is `text_repeating`), not the product's handling of a huge reply."""
        size = self._huge_size(rng)
        line = "".join(rng.choice("abcdefghij ") for _ in range(61))
        return "".join(f"{number:07d} {line}\n" for number in range(size // 70 + 1))[:size]

    def _huge_call(self, rng: random.Random) -> ToolCallSpec:
        text = self._huge_text(rng)
        if rng.random() < 0.5:
            return ToolCallSpec(name="create_file", arguments={"path": "app/huge.txt", "content": text})
        path, search = self._snippet(rng)
        return ToolCallSpec(name="edit_file", arguments={"path": path, "search": search, "replace": text})

    # ---- agents without tools: the text protocol ----------------------------------------------------------

    def text_reply(self, rng: random.Random) -> tuple[str, Reply]:
        """A reply to an agent without tools (the text protocol)."""
        roll = rng.random()
        if roll < 0.25:
            return "text_prose", Reply(text=rng.choice(["I made the change.\nDONE", "Here is my analysis.", ""]))
        if roll < 0.80:
            return "text_blocks", Reply(text=self._blocks_text(rng))
        if roll < 0.98:
            path = rng.choice([*sorted(self.world.files), *self.world.outside, "../../etc/passwd", "~/.bashrc"])
            return "text_read", Reply(text=f"READ {path}\nREAD {rng.choice(self._python)} 1-5")
        if roll < 0.99:
            # A model stuck in a loop: 150 identical chunks, which LiteLLM aborts after 100 as a repetition.
            return "text_repeating", Reply(text="again and " * 150, chunk_chars=len("again and "))
        return "text_huge", Reply(text=self._block(rng.choice(["app/huge.py", "../huge.txt"]), "",
                                                   self._huge_text(rng)))

    @staticmethod
    def _block(path: str, search: str, replace: str) -> str:
        return f"{path}\n<<<<<<< SEARCH\n{search}=======\n{replace}>>>>>>> REPLACE\n"

    def _blocks_text(self, rng: random.Random) -> str:
        path, search = self._snippet(rng)
        valid = self._block(path, search, search.rstrip("\n") + "  # chaos text edit\n")
        mangles: list[Callable[[], str]] = [
            lambda: valid,
            lambda: valid.replace("=======\n", ""),
            lambda: valid.replace(">>>>>>> REPLACE\n", ""),
            lambda: valid.split("\n", 1)[1],  # no file name line
            lambda: valid.replace("<<<<<<< SEARCH", "<<<< SEARCH"),
            lambda: f"```python\n{valid}```\nDONE",
            lambda: valid.replace("\n", "\r\n"),
            lambda: self._block(self._hostile_path(rng, for_write=True) or "x", "", HOSTILE_MARK),
            lambda: self._block("app/chaos_text.py", "", "VALUE = 2\n") + "DONE",
            lambda: self._block(path, "text that is not there\n", "x\n"),
        ]
        return "Here is the change.\n\n" + rng.choice(mangles)()
