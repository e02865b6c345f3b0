"""The two ways to set up, scripts/setup.sh (requirements.txt) and conda (environment.yml), install the same."""
import re

from tests.harness.run_folders import ROOT

# conda-forge's names for packages that PyPI names otherwise
CONDA_NAMES = {"torch": "pytorch-cpu", "soundfile": "pysoundfile", "soxr": "soxr-python",
               "sounddevice": "python-sounddevice"}
REQUIREMENT = re.compile(r"^\s*(?:-\s*)?([A-Za-z0-9_.\-]+)\s*([<>=!~].*)?$")


def requirements(lines: list[str]) -> dict[str, str]:
    """Return {lower-case name: version constraint} from requirement lines, comments left out."""
    found = {}
    for line in lines:
        line = line.split("#")[0].strip()
        match = REQUIREMENT.match(line)
        if match and line not in ("-", "- pip:"):
            found[match.group(1).lower()] = (match.group(2) or "").strip()
    return found


def test_environment_yml_lists_every_package_of_requirements_txt():
    pip_packages = requirements((ROOT / "requirements.txt").read_text().splitlines())
    conda_lines = [line for line in (ROOT / "environment.yml").read_text().splitlines()
                   if line.lstrip().startswith("- ") and not line.strip().endswith(":")]
    conda_packages = requirements(conda_lines)
    missing = [name for name in pip_packages if CONDA_NAMES.get(name, name) not in conda_packages]
    assert not missing, f"environment.yml lacks {missing}: add each (by its conda-forge name, or under pip:)"
    # A package both files pin must be pinned alike (torch is pinned to a CPU wheel by pip only).
    differing = {name: (version, conda_packages[CONDA_NAMES.get(name, name)]) for name, version in pip_packages.items()
                 if name != "torch" and version != conda_packages[CONDA_NAMES.get(name, name)]}
    assert not differing, f"requirements.txt and environment.yml ask for different versions: {differing}"


def test_the_conda_environment_installs_the_project_itself():
    assert "- -e ." in (ROOT / "environment.yml").read_text()
