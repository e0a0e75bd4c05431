"""The commands through ``main(argv)``: exit codes, output, and never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from policylang.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "rules"
POLICY = """policy demo version "1"
default deny

tool payments.send { amount: number, to: string }

allow payments.send when principal.role == "finance" because "finance pays"
deny payments.send when args.amount > 1000 because "too much"
confirm payments.send when args.amount > 100 because "check it"
"""


@pytest.fixture(autouse=True)
def _no_colour(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    p = tmp_path / "demo.policy"
    p.write_text(POLICY, encoding="utf-8")
    return p


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


# ---- main / version / help / completion


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "version")
    assert code == 0 and out.startswith("policylang ")
    for cmd in ("lint", "fmt", "eval", "compile", "completion", "version"):
        code, out, _ = run(capsys, cmd, "--help")
        assert code == 0 and "example" in out
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "examples:" in out


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys)[0] == 2
    assert run(capsys, "nonsense")[0] == 2
    assert run(capsys, "lint")[0] == 2
    assert run(capsys, "lint", "x", "--format", "xml")[0] == 2
    code, _, err = run(capsys, "lint", "x", "--select", "ZZ9")
    assert code == 2 and "ZZ9" in err


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_completion(capsys: pytest.CaptureFixture[str], shell: str) -> None:
    code, out, _ = run(capsys, "completion", shell)
    assert code == 0 and "policylang" in out and "lint" in out and "--format" in out


def test_internal_errors_are_reported_not_raised(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import policylang.cli.version as version

    def boom(args: object) -> int:
        raise RuntimeError("kaput")

    monkeypatch.setattr(version, "run", boom)
    code, _, err = run(capsys, "version")
    assert code == 2 and "internal error" in err and "kaput" in err and "please report" in err


def test_python_dash_m(tmp_path: Path) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "policylang", "version"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0 and "policylang" in done.stdout


# ---- lint


def test_lint_clean_and_findings(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    good = tmp_path / "good.policy"
    good.write_text(POLICY, encoding="utf-8")
    assert run(capsys, "lint", str(good))[0] == 0
    bad = tmp_path / "bad.policy"
    bad.write_text(POLICY + "deny payments.send when args.amout > 1\n", encoding="utf-8")
    code, out, _ = run(capsys, "lint", str(bad))
    assert code == 1 and "PL102" in out and "did you mean 'amount'" in out and "^" in out


def test_lint_strict_and_filters(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    p = tmp_path / "w.policy"
    p.write_text(POLICY + 'deny payments.send when args.to == "x"\n', encoding="utf-8")
    assert run(capsys, "lint", str(p))[0] == 0
    assert run(capsys, "lint", str(p), "--strict")[0] == 1
    code, out, _ = run(capsys, "lint", str(p), "--strict", "--ignore", "PL209")
    assert code == 0 and "All checks passed" in out
    code, out, _ = run(capsys, "lint", str(p), "--strict", "--select", "PL1,PL203")
    assert code == 0


def test_lint_inline_ignore(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    p = tmp_path / "i.policy"
    p.write_text(
        POLICY + '# policylang: ignore[PL209]\ndeny payments.send when args.to == "x"\n'
        'deny payments.send when args.to == "y"  # policylang: ignore[PL2]\n',
        encoding="utf-8",
    )
    code, out, _ = run(capsys, "lint", str(p), "--strict")
    assert code == 0, out


def test_lint_folder_recurses_and_sorts(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.policy").write_text(
        "tool t { n: int }\nallow t when args.m > 1\n", encoding="utf-8"
    )
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "y.policy").write_text("allow t when (\n", encoding="utf-8")
    code, out, _ = run(capsys, "lint", str(tmp_path), "--format", "json")
    found = json.loads(out)
    assert code == 1
    assert [d["code"] for d in found if d["severity"] == "error"] == ["PL102", "PL001"]
    assert found == sorted(found, key=lambda d: (d["file"], d["line"], d["column"], d["code"]))


def test_lint_formats(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    p = tmp_path / "f.policy"
    p.write_text(POLICY + 'deny payments.send when args.amout > 1 because "x"\n', encoding="utf-8")
    code, out, _ = run(capsys, "lint", str(p), "--format", "sarif")
    log = json.loads(out)
    assert code == 1 and log["version"] == "2.1.0"
    rules = log["runs"][0]["tool"]["driver"]["rules"]
    assert {"PL001", "PL102", "PL203"} <= {r["id"] for r in rules}
    result = log["runs"][0]["results"][0]
    assert result["ruleId"] == "PL102" and rules[result["ruleIndex"]]["id"] == "PL102"
    assert result["locations"][0]["physicalLocation"]["region"]["startLine"] == 9
    code, out, _ = run(capsys, "lint", str(p), "--format", "github")
    assert out.startswith(f"::error file={p},line=9,col=25::PL102 ")


def test_lint_explain(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "lint", "--explain", "pl203")
    assert code == 0 and "PL203" in out and "Example" in out
    code, _, err = run(capsys, "lint", "--explain", "PL999")
    assert code == 2 and "unknown code" in err


def test_lint_unreadable_inputs(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(capsys, "lint", str(tmp_path / "missing.policy"))
    assert code == 1 and "PL002" in out and "no such file" in out
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out, _ = run(capsys, "lint", str(empty))
    assert code == 1 and "no .policy files" in out
    latin = tmp_path / "latin.policy"
    latin.write_bytes(b"policy caf\xe9\n")
    code, out, _ = run(capsys, "lint", str(latin))
    assert code == 1 and "PL003" in out and "UTF-8" in out
    folder = tmp_path / "withdata"
    folder.mkdir()
    (folder / "p.policy").write_text(
        'policy p\nallow * when "a" in data.contacts because "x"\n', encoding="utf-8"
    )
    (folder / "contacts.yaml").write_text("- [unclosed\n", encoding="utf-8")
    code, out, _ = run(capsys, "lint", str(folder))
    assert code == 1 and "PL004" in out and "PL114" not in out


def test_lint_shipped_rules_clean(capsys: pytest.CaptureFixture[str]) -> None:
    assert RULES.is_dir()
    code, out, _ = run(capsys, "lint", str(RULES), "--strict")
    assert code == 0, out


# ---- fmt


def test_fmt_check_diff_and_write(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    p = tmp_path / "m.policy"
    messy = 'policy m\ntool x {a: int}\nallow   x when args.a>1 because "ok"\n'
    p.write_text(messy, encoding="utf-8")
    code, out, _ = run(capsys, "fmt", str(p), "--check")
    assert code == 1 and "+allow x when args.a > 1" in out and p.read_text() == messy
    code, out, _ = run(capsys, "fmt", str(p), "--diff")
    assert code == 1 and p.read_text() == messy
    assert run(capsys, "fmt", str(p))[0] == 0
    assert "args.a > 1" in p.read_text()
    assert run(capsys, "fmt", str(p), "--check")[0] == 0


def test_fmt_never_writes_a_broken_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    p = tmp_path / "broken.policy"
    p.write_text("allow x when (\n", encoding="utf-8")
    code, _, err = run(capsys, "fmt", str(p))
    assert code == 1 and "PL001" in err and p.read_text() == "allow x when (\n"
    code, _, err = run(capsys, "fmt", str(tmp_path / "nope.policy"))
    assert code == 1 and "no such file" in err
    bad = tmp_path / "latin.policy"
    bad.write_bytes(b"policy caf\xe9\n")
    code, _, err = run(capsys, "fmt", str(bad))
    assert code == 1 and "UTF-8" in err


# ---- eval


def _req(tmp_path: Path, body: object, name: str = "req.json") -> str:
    p = tmp_path / name
    p.write_text(json.dumps(body) if name.endswith(".json") else str(body), encoding="utf-8")
    return str(p)


def test_eval_exit_codes(capsys: pytest.CaptureFixture[str], policy: Path, tmp_path: Path) -> None:
    base = {"tool": "payments.send", "principal": {"role": "finance"}}
    allow = _req(tmp_path, {**base, "args": {"amount": 5, "to": "a"}}, "a.json")
    code, out, _ = run(capsys, "eval", str(policy), "--request", allow)
    assert code == 0 and out.startswith("ALLOW payments.send")
    code, out, _ = run(capsys, "eval", str(policy), "--request", allow, "--json")
    assert code == 0 and json.loads(out)["effect"] == "allow"
    confirm = _req(tmp_path, {**base, "args": {"amount": 500, "to": "a"}}, "c.json")
    assert run(capsys, "eval", str(policy), "--request", confirm)[0] == 3
    code, out, _ = run(
        capsys,
        "eval",
        str(policy),
        "--tool",
        "payments.send",
        "--args",
        '{"amount": 5000, "to": "a"}',
        "--principal",
        '{"role": "finance"}',
    )
    assert code == 1 and "too much" in out


def test_eval_yaml_on_stdin(
    capsys: pytest.CaptureFixture[str], policy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    monkeypatch.setattr(
        "sys.stdin",
        io.StringIO("tool: payments.send\nargs: {amount: 5, to: a}\nprincipal: {role: finance}\n"),
    )
    assert run(capsys, "eval", str(policy), "--request", "-")[0] == 0


def test_eval_explain(capsys: pytest.CaptureFixture[str], policy: Path) -> None:
    code, out, _ = run(
        capsys,
        "eval",
        str(policy),
        "--tool",
        "payments.send",
        "--args",
        '{"amount": 500, "to": "a"}',
        "--principal",
        '{"role": "finance"}',
        "--explain",
    )
    assert code == 3
    assert "explanation: 3 rules apply to payments.send" in out
    assert "args.amount = 500" in out and 'principal.role = "finance"' in out
    assert "combined: confirm" in out
    code, out, _ = run(
        capsys,
        "eval",
        str(policy),
        "--tool",
        "payments.send",
        "--args",
        '{"amount": 500, "to": "a"}',
        "--explain",
        "--json",
    )
    data = json.loads(out)
    assert code == 3 and [r["matched"] for r in data["explanation"]["rules"]] == [
        False,
        False,
        True,
    ]


def test_eval_shipped_request(capsys: pytest.CaptureFixture[str]) -> None:
    req = RULES / "requests" / "payment_large.json"
    assert req.exists()
    code, out, _ = run(capsys, "eval", str(RULES), "--request", str(req), "--explain")
    assert code == 3 and "large_payment" in out


@pytest.mark.parametrize(
    "content,message",
    [
        ("{not json", "not valid JSON"),
        ("tool: [a\n", "neither JSON nor valid YAML"),
        ("[1, 2]", "must be an object"),
        ('{"args": {}}', "no tool name"),
        ('{"tool": "payments.send", "args": [1]}', "'args' must be an object"),
    ],
)
def test_eval_malformed_requests(
    capsys: pytest.CaptureFixture[str], policy: Path, tmp_path: Path, content: str, message: str
) -> None:
    p = tmp_path / "bad.req"
    p.write_text(content, encoding="utf-8")
    code, _, err = run(capsys, "eval", str(policy), "--request", str(p))
    assert code == 2 and message in err


def test_eval_load_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "eval", str(tmp_path / "nope"), "--tool", "x")
    assert code == 2 and "no such file" in err
    code, _, err = run(capsys, "eval", str(tmp_path), "--tool", "x")
    assert code == 2 and "no .policy files" in err
    code, _, err = run(capsys, "eval", str(tmp_path), "--request", str(tmp_path / "missing.json"))
    assert code == 2 and "no such file" in err
    bad = tmp_path / "bad.policy"
    bad.write_text("allow x when (\n", encoding="utf-8")
    code, _, err = run(capsys, "eval", str(bad), "--tool", "x")
    assert code == 2 and "PL001" in err
    code, _, err = run(capsys, "eval", str(bad))
    assert code == 2 and "--request" in err


# ---- compile


@pytest.mark.parametrize(
    "emit,needle",
    [
        ("python", "def "),
        ("ast", "Rule("),
        ("ir", "tool payments.send"),
        ("cel", "args.amount > 1000"),
    ],
)
def test_compile_emits(
    capsys: pytest.CaptureFixture[str], policy: Path, emit: str, needle: str
) -> None:
    code, out, _ = run(capsys, "compile", str(policy), "--emit", emit)
    assert code == 0 and needle in out
    code, out, _ = run(capsys, "compile", str(policy), "--emit", emit, "--tool", "payments.send")
    assert code == 0 and needle in out


def test_compile_errors(capsys: pytest.CaptureFixture[str], policy: Path, tmp_path: Path) -> None:
    code, _, err = run(capsys, "compile", str(policy), "--tool", "payments.sned")
    assert code == 2 and "did you mean 'payments.send'" in err
    code, _, err = run(capsys, "compile", str(tmp_path / "nope"))
    assert code == 2 and "no such file" in err
