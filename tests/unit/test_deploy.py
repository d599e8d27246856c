"""What a Hugging Face Space and GitHub read: the README front matter and the workflow files."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def pinned(name: str, requirements: str = "requirements.txt") -> str:
    """The version `requirements.txt` pins for a package (extras allowed)."""
    text = (ROOT / requirements).read_text()
    match = re.search(rf"(?m)^{re.escape(name)}(\[[^\]]*\])?==(\S+)$", text)
    assert match, f"{name} is not pinned in {requirements}"
    return match.group(2)


def front_matter() -> dict:
    text = (ROOT / "README.md").read_text()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n", 2)[1])


def test_space_front_matter() -> None:
    meta = front_matter()
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py"
    assert meta["sdk_version"] == pinned("gradio"), "the Space runs the gradio the app was tested with"
    assert meta["hf_oauth"] is True and meta["hf_oauth_scopes"] == ["inference-api"]
    assert meta["short_description"] and len(meta["short_description"]) <= 60
    assert meta["tags"]


def _check(*paths: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows"]
    return subprocess.run([*command, *map(str, paths)], capture_output=True, text=True, timeout=120)


def test_workflows_match_githubs_schema() -> None:
    assert {p.name for p in WORKFLOWS} >= {"ci.yml", "deploy.yml"}
    result = _check(*WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_catches_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("name: broken\non: push\njobs:\n  test:\n    steps:\n      - run: true\n")  # no runs-on
    assert _check(broken).returncode != 0


@pytest.fixture(scope="module")
def deploy() -> dict:
    return yaml.safe_load((ROOT / ".github" / "workflows" / "deploy.yml").read_text())


def test_deploy_pushes_main_to_a_space_with_the_hf_token_secret(deploy: dict) -> None:
    assert deploy[True]["push"]["branches"] == ["main"]  # YAML 1.1 reads the key `on` as True
    steps = deploy["jobs"]["deploy"]["steps"]
    script = "\n".join(step.get("run", "") for step in steps)
    assert f"huggingface_hub=={pinned('huggingface_hub')}" in script
    assert "upload_folder" in script and 'repo_type="space"' in script
    upload = next(step for step in steps if "upload_folder" in step.get("run", ""))
    assert upload["env"]["HF_TOKEN"] == "${{ secrets.HF_TOKEN }}"
    compile(script.split("python - <<'PY'\n", 1)[1].split("PY\n", 1)[0], "deploy.yml", "exec")


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    command = "apt-get update && apt-get install -y chromium && pip install -r requirements-dev.txt"
    assert command in readme
    assert command in (ROOT / ".ci" / "run").read_text()
    ci = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    assert any(step.get("run") == "bash .ci/run" for step in ci["jobs"]["test"]["steps"])
