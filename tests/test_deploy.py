"""The deployment files: linted, consistent with each other, and what the image runs, run.

No Docker engine is assumed. The container's entrypoint and health check are run here as the
image would run them (same console script, same environment) from the test virtualenv, which
is installed from the same pinned constraints as the image.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
BIN = Path(sys.executable).parent


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) of the final stage, continuation lines joined."""
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    instructions = [tuple(line.split(None, 1)) for line in lines if line and line[0] != "#"]
    last_from = max(i for i, (op, _) in enumerate(instructions) if op == "FROM")
    return [(op, args) for op, args in instructions[last_from:]]  # type: ignore[misc]


def exec_form(args: str) -> list[str]:
    return list(json.loads(args))


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for op, args in dockerfile():
        if op == "ENV":
            for pair in shlex.split(args):
                key, value = pair.split("=", 1)
                env[key] = value
    return env


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint", path=str(BIN)) or shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is installed with the dev extra on Linux only")
    result = subprocess.run(
        [hadolint, str(DEPLOY / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_runs_as_non_root_with_the_database_on_a_volume() -> None:
    ops = dict(dockerfile())
    assert ops["USER"].split(":")[0] not in ("root", "0")
    assert exec_form(ops["VOLUME"]) == [str(Path(image_env()["PAPERBOT_DB"]).parent)]
    assert "-c deploy/constraints.txt" in (DEPLOY / "Dockerfile").read_text()
    assert "HEALTHCHECK" in ops and "EXPOSE" in ops
    assert ops["EXPOSE"] == image_env()["PAPERBOT_HTTP_PORT"]


def test_constraints_pin_every_runtime_dependency() -> None:
    pins = {
        line.split("==")[0].lower().replace("_", "-").replace(".", "-")
        for line in (DEPLOY / "constraints.txt").read_text().splitlines()
        if "==" in line
    }
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"]:
        name = requirement.split(">")[0].split("<")[0].split("=")[0].split(";")[0].strip()
        assert name.lower().replace("_", "-").replace(".", "-") in pins, name


def test_compose_builds_this_image_and_keeps_its_promises() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    service = compose["services"]["paperbot"]
    context = (DEPLOY / service["build"]["context"]).resolve()
    assert (context / service["build"]["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
    assert (DEPLOY / service["env_file"][0]).resolve() == ROOT / ".env"
    volume, mount = service["volumes"][0].split(":")
    assert volume in compose["volumes"]
    env = service["environment"]
    assert Path(env["PAPERBOT_DB"]).parent == Path(mount)
    assert service["ports"][0].endswith(f":{env['PAPERBOT_HTTP_PORT']}")
    assert service["restart"] == "unless-stopped"
    assert set(service) <= {
        "build", "image", "env_file", "environment", "volumes", "ports", "restart",
        "stop_grace_period", "read_only", "tmpfs", "security_opt", "cap_drop",
    }  # fmt: skip


def test_systemd_unit_verifies_cleanly(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here")
    unit = (DEPLOY / "paperbot.service").read_text()
    assert "Restart=on-failure" in unit and "NoNewPrivileges=yes" in unit
    # Point the unit at this checkout's install so the paths it names exist.
    env_file = tmp_path / "paperbot.env"
    env_file.write_text("")
    local = unit.replace("/opt/paperbot/bin/paperbot", str(BIN / "paperbot")).replace(
        "/etc/paperbot/paperbot.env", str(env_file)
    )
    path = tmp_path / "paperbot.service"
    path.write_text(local)
    result = subprocess.run(
        [analyze, "verify", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), result.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_image_entrypoint_serves_health_and_stops_cleanly(tmp_path: Path) -> None:
    ops = dict(dockerfile())
    entrypoint, command = exec_form(ops["ENTRYPOINT"]), exec_form(ops["CMD"])
    check = exec_form(ops["HEALTHCHECK"].split("CMD", 1)[1])
    port = free_port()
    env = {
        **os.environ,
        **image_env(),
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "PAPERBOT_DB": str(tmp_path / "paperbot.db"),
        "PAPERBOT_HTTP_HOST": "127.0.0.1",  # the image says 0.0.0.0; tests stay on loopback
        "PAPERBOT_HTTP_PORT": str(port),
        "PAPERBOT_HF_API_URL": "http://127.0.0.1:9/api",  # nothing listens: no internet
        "PAPERBOT_ARXIV_API_URL": "http://127.0.0.1:9/api/query",
    }
    for name in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "DISCORD_TOKEN"):
        env[name] = ""
    seed = ROOT / "bot" / "data" / "seed_papers.jsonl"
    subprocess.run([*entrypoint, "import", str(seed)], env=env, check=True, capture_output=True)
    bot = subprocess.Popen(
        [*entrypoint, *command],
        env=env,
        stdin=subprocess.DEVNULL,  # a container has no terminal: the bot runs headless
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            probe = subprocess.run(check, env=env, capture_output=True, text=True, check=False)
            if probe.returncode == 0 or time.monotonic() > deadline or bot.poll() is not None:
                break
            time.sleep(0.3)
        assert probe.returncode == 0, probe.stdout + probe.stderr
        health = json.loads(probe.stdout)
        assert health["store"] == "ok" and health["scheduler"] == "ok" and health["papers"] == 315
    finally:
        bot.send_signal(signal.SIGTERM)
        out, err = bot.communicate(timeout=20)
    assert bot.returncode == 0, err
    assert "running headless" in out and "Stopping." in out
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines, "the bot logged nothing"
    for line in lines:  # PAPERBOT_LOG_FORMAT=json: every line one JSON event
        assert json.loads(line)["level"]
