"""The repository's conventions say what the rest of it says: CI runs the README's test
command; the dev container and CI use the Python that pyproject.toml and the Makefile
require and the Node the README asks for; VS Code's debugger attaches where the host task
listens; the azd workflow deploys azure.yaml's service with every parameter the template
reads; LICENSE is MIT; CONTRIBUTING's links resolve.

Only read here: neither `make demo` nor `make test` needs any of these files.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.specifiers import SpecifierSet

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / ".github" / "workflows"
VSCODE = REPO / ".vscode"
CONTRIBUTING = REPO / "CONTRIBUTING.md"
# Written on another branch of this round; CONTRIBUTING links to it already.
ANNOUNCED = {
    REPO / "docs" / "architecture.md": "not on this branch yet: docs/architecture.md is being"
    " written on another branch of this round",
}
# The Azure Functions extension starts the host's Python worker under debugpy on the
# `port` of the launch configuration that asked for the host task, 9091 when it has none
# (vscode-azurefunctions, PythonDebugProvider); `connect.port` is where debugpy attaches.
FUNCTIONS_EXTENSION_DEBUG_PORT = 9091
# Always set by `azd pipeline config`; everything else the template reads comes from
# azure.yaml's pipeline.variables.
AZD_PIPELINE_VARIABLES = {
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "AZURE_SUBSCRIPTION_ID",
    "AZURE_ENV_NAME",
    "AZURE_LOCATION",
}
# Set by azd itself at provision time, from the identity that logged in.
AZD_SETS_ITSELF = {"AZURE_PRINCIPAL_ID"}
_LINK = re.compile(r"\]\(([^)\s]+)\)")


def load_yaml(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict), f"{path.name} is not a YAML mapping"
    return document


def load_jsonc(path: Path) -> Any:
    """JSON with whole-line // comments, as VS Code and dev containers write it."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return json.loads("\n".join(line for line in lines if not line.lstrip().startswith("//")))


def triggers(workflow: dict[Any, Any]) -> dict[str, Any]:
    # YAML 1.1 (PyYAML) reads the bare key `on` as the boolean true.
    found = workflow.get("on", workflow.get(True))
    assert isinstance(found, dict), "the workflow's triggers are not a mapping"
    return {event: config or {} for event, config in found.items()}


def steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def script_commands(script: str) -> list[str]:
    """A shell script's commands, one a line, without comments, `set` or `cd`."""
    joined = re.sub(r"\\\n\s*", " ", script)
    commands = []
    for line in joined.splitlines():
        command = line.split("#", 1)[0].strip() if not line.lstrip().startswith("#!") else ""
        if command and not re.match(r"(set|cd)\b", command):
            commands.append(command)
    return commands


def executed(workflow: dict[str, Any]) -> list[str]:
    """Every command the workflow's steps run, a script of the repository by its lines."""
    commands = []
    for step in steps(workflow):
        for command in script_commands(step.get("run", "")):
            words = shlex.split(command)
            script = REPO / (words[-1] if words[0] in ("bash", "sh") else words[0])
            if len(words) <= 2 and script.is_file() and REPO in script.resolve().parents:
                commands.extend(script_commands(script.read_text(encoding="utf-8")))
            else:
                commands.append(command)
    return commands


def readme_section(heading: str) -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]


def readme_test_command() -> str:
    """The second command of the README's two: the first tries the product, this tests it."""
    block = re.search(r"```bash\n(.*?)```", readme_section("Two commands"), re.DOTALL)
    assert block, "the README's Two commands section has no bash block"
    commands = [line.split("#", 1)[0].strip() for line in block[1].splitlines() if line.strip()]
    assert len(commands) == 2, commands
    assert "test" in commands[1], commands
    return commands[1]


def makefile() -> str:
    return (REPO / "Makefile").read_text(encoding="utf-8")


def make_targets() -> set[str]:
    phony = re.search(r"^\.PHONY:(.*)$", makefile(), re.MULTILINE)
    assert phony, "the Makefile declares no .PHONY targets"
    return set(phony[1].split())


def python_required() -> str:
    """The one Python minor version pyproject.toml allows, as 3.N."""
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    spec = re.search(r'^requires-python\s*=\s*"([^"]+)"', pyproject, re.MULTILINE)
    assert spec, "pyproject.toml has no requires-python"
    allowed = [
        f"3.{minor}" for minor in range(50) if SpecifierSet(spec[1]).contains(f"3.{minor}.0")
    ]
    assert len(allowed) == 1, f"requires-python {spec[1]} allows {allowed}, not one version"
    return allowed[0]


def ci() -> dict[str, Any]:
    return load_yaml(WORKFLOWS / "ci.yml")


def ci_images() -> list[str]:
    """The container images CI's jobs run in (a job's `container` is an image or a mapping)."""
    images = []
    for job in ci()["jobs"].values():
        container = job.get("container")
        if container:
            images.append(container if isinstance(container, str) else container["image"])
    return images


def azure_dev() -> dict[str, Any]:
    return load_yaml(WORKFLOWS / "azure-dev.yml")


def devcontainer() -> dict[str, Any]:
    document = load_jsonc(REPO / ".devcontainer" / "devcontainer.json")
    assert isinstance(document, dict)
    return document


def devcontainer_feature(name: str) -> dict[str, Any]:
    """The options of a feature by its name (`node` for ghcr.io/devcontainers/features/node:1)."""
    found = [
        options
        for feature, options in devcontainer()["features"].items()
        if feature.rsplit("/", 1)[-1].split(":", 1)[0] == name
    ]
    assert len(found) == 1, f"the dev container has {len(found)} {name} features"
    return dict(found[0])


def vscode_tasks() -> dict[str, dict[str, Any]]:
    return {task["label"]: task for task in load_jsonc(VSCODE / "tasks.json")["tasks"]}


def debug_attach() -> dict[str, Any]:
    """The launch configuration that attaches debugpy to the Functions host."""
    configurations = load_jsonc(VSCODE / "launch.json")["configurations"]
    [attach] = [c for c in configurations if c["type"] == "debugpy" and c["request"] == "attach"]
    return dict(attach)


# CI


def test_ci_runs_on_every_push_and_pull_request() -> None:
    on = triggers(ci())
    assert {"push", "pull_request"} <= set(on), set(on)
    assert not on["push"].get("branches"), "CI should run on a push to any branch"


def test_ci_runs_the_readmes_test_command() -> None:
    command = readme_test_command()
    assert command in executed(ci()), f"CI does not run the README's {command!r}"


def test_ci_installs_chromium_before_the_tests() -> None:
    """tests/jobs/test_report.py opens the HTML report in Debian's chromium and fails
    without it: CI installs it first, so that check always runs there."""
    commands = executed(ci())
    test = commands.index(readme_test_command())
    installs = [
        i for i, c in enumerate(commands) if re.search(r"apt-get install[^|;&]*\bchromium\b", c)
    ]
    assert installs and installs[0] < test, f"CI installs no chromium before the tests: {commands}"


def test_the_ci_script_the_workflow_calls_is_executable() -> None:
    for step in steps(ci()):
        for command in script_commands(step.get("run", "")):
            script = REPO / shlex.split(command)[0]
            if script.is_file():
                assert script.stat().st_mode & 0o111, f"{command}: not executable"


# Python and Node


def test_python_is_the_one_pyproject_and_the_makefile_require_everywhere() -> None:
    python = python_required()
    makefile_versions = {
        *(f"3.{m}" for m in re.findall(r"python3\.(\d+)", makefile())),
        *(f"3.{m}" for m in re.findall(r"version_info\[:2\] [!=]= \(3, (\d+)\)", makefile())),
    }
    assert makefile_versions == {python}, f"the Makefile looks for {makefile_versions}"
    image = devcontainer()["image"]
    assert re.search(rf"/python:(\d+-)?{re.escape(python)}-", image), image
    ci_versions = {
        *(m[1] for image in ci_images() if (m := re.match(r"python:(3\.\d+)", image))),
        *(
            str(s["with"]["python-version"])
            for s in steps(ci())
            if "setup-python" in s.get("uses", "")
        ),
    }
    assert ci_versions == {python}, f"CI runs Python {ci_versions}"
    assert f"Python {python}" in readme_section("Two commands")


def test_node_is_the_readmes_in_ci_and_the_dev_container() -> None:
    readme = re.search(r"\bNode (\d+)\b", readme_section("Two commands"))
    assert readme, "the README's Two commands section names no Node version"
    ci_versions = {
        str(s["with"]["node-version"]) for s in steps(ci()) if "setup-node" in s.get("uses", "")
    }
    assert ci_versions == {readme[1]}, f"CI sets up Node {ci_versions}"
    assert str(devcontainer_feature("node")["version"]) == readme[1]


def test_ci_and_the_dev_container_run_the_same_debian() -> None:
    def release(image: str) -> str:
        found = re.search(r"-(bullseye|bookworm|trixie|forky)$", image)
        assert found, f"{image}: no Debian release in its tag"
        return found[1]

    ci_releases = {release(image) for image in ci_images()}
    assert ci_releases == {release(devcontainer()["image"])}, ci_releases


def test_the_dev_container_has_the_tools_the_readme_uses() -> None:
    for feature in ("azd", "azure-cli", "azure-functions-core-tools"):
        devcontainer_feature(feature)
    assert devcontainer_feature("azure-cli").get("installBicep") is True
    assert devcontainer()["postCreateCommand"] in {f"make {t}" for t in make_targets()}


# VS Code


def test_the_debugger_attaches_where_the_host_task_starts_debugpy() -> None:
    attach = debug_attach()
    listens = attach.get("port", FUNCTIONS_EXTENSION_DEBUG_PORT)
    assert attach["connect"]["port"] == listens, (attach["connect"], listens)
    host_task = vscode_tasks()[attach["preLaunchTask"]]
    # Only the extension's own task type gets debugpy (and the venv) from the extension.
    assert host_task["type"] == "func", host_task
    assert re.match(r"\s*(host )?start\b", host_task["command"]), host_task


def test_the_host_task_runs_in_the_makefiles_venv() -> None:
    settings = load_jsonc(VSCODE / "settings.json")
    venv = re.search(r"^VENV := (\S+)$", makefile(), re.MULTILINE)
    assert venv, "the Makefile names no VENV"
    assert settings["azureFunctions.pythonVenv"] == venv[1]
    assert settings["python.defaultInterpreterPath"].endswith(f"{venv[1]}/bin/python")


def test_the_tasks_run_make_targets_that_exist_and_the_readmes_test_command() -> None:
    tasks = vscode_tasks()
    shell = {label: t["command"] for label, t in tasks.items() if t["type"] == "shell"}
    for label, command in shell.items():
        words = command.split()
        assert words[0] == "make" and set(words[1:]) <= make_targets(), (label, command)
    assert readme_test_command() in shell.values()
    assert "make up" in shell.values()
    for label, task in tasks.items():
        assert task.get("dependsOn", label) in tasks, task


def test_the_dev_container_forwards_the_ports_the_api_is_served_on() -> None:
    up = (REPO / "devstack" / "up.py").read_text(encoding="utf-8")
    make_up = re.search(r"^DEFAULT_PORT = (\d+)", up, re.MULTILINE)
    assert make_up, "devstack/up.py has no DEFAULT_PORT"
    host_task = vscode_tasks()[debug_attach()["preLaunchTask"]]
    host = re.search(r"--port (\d+)", host_task["command"])
    served = {int(make_up[1]), int(host[1]) if host else 7071}  # 7071: Core Tools' default
    assert served <= set(devcontainer()["forwardPorts"]), served


def test_the_recommended_extensions_are_the_dev_containers() -> None:
    recommended = set(load_jsonc(VSCODE / "extensions.json")["recommendations"])
    assert {
        "ms-azuretools.vscode-azurefunctions",
        "ms-python.python",
        "ms-azuretools.vscode-bicep",
    } <= recommended
    assert set(devcontainer()["customizations"]["vscode"]["extensions"]) == recommended


# azd


def test_the_azd_workflow_deploys_the_services_of_azure_yaml() -> None:
    services = set(load_yaml(REPO / "azure.yaml")["services"])
    deploys = [shlex.split(c) for c in executed(azure_dev()) if c.startswith("azd deploy")]
    assert deploys, "the azd workflow runs no azd deploy"
    for words in deploys:
        named = {w for w in words[2:] if not w.startswith("-")}
        assert named == services or (not named and "--all" in words[2:]), (named, services)
        assert "--no-prompt" in words, words
    provisions = [c for c in executed(azure_dev()) if c.startswith("azd provision")]
    assert provisions and all("--no-prompt" in c for c in provisions), provisions


def test_the_azd_workflow_logs_in_by_oidc_without_a_secret() -> None:
    workflow = azure_dev()
    assert workflow["permissions"]["id-token"] == "write"
    logins = [c for c in executed(workflow) if c.startswith("azd auth login")]
    assert logins and all("--federated-credential-provider github" in c for c in logins), logins
    text = (WORKFLOWS / "azure-dev.yml").read_text(encoding="utf-8")
    for secret in ("AZURE_CLIENT_SECRET", "AZURE_CREDENTIALS", "--client-secret"):
        assert secret not in text, f"the azd workflow uses {secret}"


def test_the_azd_workflow_passes_every_parameter_the_template_reads() -> None:
    parameters = (REPO / "infra" / "main.parameters.json").read_text(encoding="utf-8")
    read = set(re.findall(r"\$\{(\w+)(?:=[^}]*)?\}", parameters)) - AZD_SETS_ITSELF
    env: dict[str, str] = {}
    for job in azure_dev()["jobs"].values():
        env.update(job.get("env", {}))
    from_vars = {name for name, value in env.items() if value == f"${{{{ vars.{name} }}}}"}
    assert read | AZD_PIPELINE_VARIABLES <= from_vars, sorted(
        read | AZD_PIPELINE_VARIABLES - from_vars
    )
    listed = set(load_yaml(REPO / "azure.yaml").get("pipeline", {}).get("variables", []))
    assert listed == read - AZD_PIPELINE_VARIABLES, {
        "not in azure.yaml pipeline.variables": sorted(read - AZD_PIPELINE_VARIABLES - listed),
        "listed but not read by the template": sorted(listed - read),
    }


# LICENSE, README, CONTRIBUTING


def test_the_license_is_mit() -> None:
    text = (REPO / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License\n")
    assert re.search(r"^Copyright \(c\) 2026 the APIM Backup contributors$", text, re.MULTILINE)
    for sentence in (
        "Permission is hereby granted, free of charge, to any person obtaining a copy",
        "The above copyright notice and this permission notice shall be included in all",
        'THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR',
    ):
        assert sentence in text, sentence


def test_the_readme_points_at_the_contributor_files() -> None:
    links = set(_LINK.findall(readme_section("Contributing")))
    assert {"CONTRIBUTING.md", "SECURITY.md", "CHANGELOG.md", "LICENSE"} <= links, links


def contributing_links() -> list[str]:
    links = _LINK.findall(CONTRIBUTING.read_text(encoding="utf-8"))
    return sorted({t for t in links if not re.match(r"^[a-z]+:", t) and not t.startswith("#")})


@pytest.mark.parametrize("target", contributing_links())
def test_contributing_links_resolve(target: str) -> None:
    path = (CONTRIBUTING.parent / target.split("#", 1)[0]).resolve()
    if path in ANNOUNCED and not path.exists():
        pytest.skip(ANNOUNCED[path])
    assert path.exists(), f"CONTRIBUTING.md links to {target}, which does not exist"


def test_contributing_names_only_make_targets_that_exist() -> None:
    named = set(re.findall(r"`make (\w+)`", CONTRIBUTING.read_text(encoding="utf-8")))
    assert named, "CONTRIBUTING.md names no make target"
    assert named <= make_targets(), sorted(named - make_targets())
