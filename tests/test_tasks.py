"""``./tasks test`` and ``.ci/run`` as shell scripts: syntax, and the browser set-up logic with fake
``id``, ``sudo``, ``apt-get`` and a fake environment on a bare PATH (nothing is installed)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
INSTALL = "su -c 'apt-get update && apt-get install -y chromium chromium-driver'"


@pytest.mark.parametrize("script", ["tasks", ".ci/run"])
def test_scripts_parse(script: str) -> None:
    done = subprocess.run(["bash", "-n", str(REPO / script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def _fake(path: Path, body: str) -> None:
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)


class Sandbox:
    """A bare PATH holding only the real tools the scripts need, plus fakes that log their calls."""

    def __init__(self, root: Path, *, uid: int, sudo: bool, apt_fails: bool = False, browser: bool = False):
        self.root, self.calls = root, root / "calls.log"
        self.bin = root / "bin"
        self.bin.mkdir()
        for tool in ("bash", "env", "dirname", "sha1sum", "cut", "chmod", "date"):
            (self.bin / tool).symlink_to(shutil.which(tool))
        self.chromium, self.chromedriver = root / "chromium", root / "chromedriver"
        log = f'echo "${{0##*/}} $*" >> {self.calls}'  # "<name> <args>"
        _fake(self.bin / "id", f'[ "$1" = -u ] && echo {uid}')
        if sudo:
            _fake(self.bin / "sudo", f'{log}\nexec "$@"')
        install = ("exit 100" if apt_fails else
                   f'for f in {self.chromium} {self.chromedriver}; do echo "#!/bin/sh" > "$f"; chmod +x "$f"; done')
        _fake(self.bin / "apt-get", f'{log}\n[ "$1" = update ] && exit 0\n{install}')
        if browser:
            _fake(self.chromium, "")
            _fake(self.chromedriver, "")
        # a ready environment: the stamp ./tasks looks for, and a python that logs the pytest call
        venv = root / "venv"
        (venv / "bin").mkdir(parents=True)
        stamp = hashlib.sha1((REPO / "pyproject.toml").read_bytes()).hexdigest()[:12]
        (venv / f".installed-{stamp}").touch()
        _fake(venv / "bin" / "python", log)
        self.env = {"PATH": str(self.bin), "VENV": str(venv), "CHROMIUM": str(self.chromium),
                    "CHROMEDRIVER": str(self.chromedriver), "HOME": str(root)}

    def run(self, *command: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.bin / "bash"), *command], cwd=REPO, env=self.env, capture_output=True,
                              text=True, timeout=60)

    def log(self) -> list[str]:
        return self.calls.read_text().splitlines() if self.calls.exists() else []


def test_browser_present_installs_nothing(tmp_path: Path) -> None:
    box = Sandbox(tmp_path, uid=1000, sudo=False, browser=True)
    done = box.run("tasks", "test", "-k", "x")
    assert done.returncode == 0, done.stderr
    assert box.log() == ["python -m pytest tests book --nbval-lax --nbval-current-env -p no:cacheprovider -k x"]


@pytest.mark.parametrize("uid, sudo", [(0, False), (1000, True)], ids=["root", "sudo"])
def test_missing_browser_is_installed_then_tests_run(tmp_path: Path, uid: int, sudo: bool) -> None:
    box = Sandbox(tmp_path, uid=uid, sudo=sudo)
    done = box.run("tasks", "test")
    assert done.returncode == 0, done.stderr
    via = ["sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq",
           "sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver"] if sudo else []
    assert box.log() == [*via[:1], "apt-get update -qq", *via[1:], "apt-get install -y -qq chromium chromium-driver",
                         "python -m pytest tests book --nbval-lax --nbval-current-env -p no:cacheprovider"]
    assert "installing chromium chromium-driver" in done.stdout


def test_no_root_and_no_sudo_stops_with_the_command_to_run(tmp_path: Path) -> None:
    box = Sandbox(tmp_path, uid=1000, sudo=False)
    done = box.run("tasks", "test")
    assert done.returncode == 1 and box.log() == []  # neither apt-get nor the tests ran
    assert "sudo is not available" in done.stderr and INSTALL in done.stderr


def test_failed_install_stops_with_the_command_to_run(tmp_path: Path) -> None:
    box = Sandbox(tmp_path, uid=0, sudo=False, apt_fails=True)
    done = box.run("tasks", "test")
    assert done.returncode == 1 and not any(line.startswith("python") for line in box.log())
    assert "apt-get install failed" in done.stderr and INSTALL in done.stderr


def test_ci_only_calls_the_test_command(tmp_path: Path) -> None:
    box = Sandbox(tmp_path, uid=0, sudo=False)
    done = box.run(".ci/run")
    assert done.returncode == 0, done.stderr
    assert [line.split()[0] for line in box.log()] == ["apt-get", "apt-get", "python"]
    assert "[ci] test command took" in done.stdout
