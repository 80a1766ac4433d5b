"""One package, one install: what the wheel holds, what the environments pin, and the wheel itself
installed into a fresh virtual environment outside the repository running Lab 1 from
`vmlab labs copy`.

The wheel test needs PyPI (it installs the lab and test extras, reusing pip's cache) and takes a
minute or two; it is part of `make test` (and `make wheel-test` alone).
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import shutil
import subprocess
import sys
import tomllib
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]
LAB1 = "01-meet-the-hypervisor.ipynb"


def _package_folders() -> set[str]:
    """Every import package the repository holds, under the name the wheel gives it."""
    found = {"vmlab._data", "vmlab._labs"}  # data-only: datasets/ and labs/ (package-dir)
    data = ROOT / "datasets"  # every data folder is a package too (setuptools ships package data per package)
    found |= {"vmlab._data." + ".".join(d.relative_to(data).parts) for d in data.rglob("*")
              if d.is_dir() and "__pycache__" not in d.parts}
    for base, prefix in ((ROOT / "vmlab", "vmlab"), (ROOT / "widgets", "vmlab.widgets")):
        for init in base.rglob("__init__.py"):
            rel = init.parent.relative_to(base)
            found.add(".".join([prefix, *rel.parts]))
    return found


def test_the_explicit_packages_list_names_every_package_folder():
    listed = set(SETUPTOOLS["packages"])
    assert listed == _package_folders(), (
        f"pyproject [tool.setuptools] packages is missing {sorted(_package_folders() - listed)} and lists "
        f"{sorted(listed - _package_folders())} that do not exist; edit the list")
    assert SETUPTOOLS["package-dir"] == {"vmlab.widgets": "widgets", "vmlab._data": "datasets", "vmlab._labs": "labs"}


def test_package_data_covers_every_registered_dataset_and_every_lab():
    import fnmatch
    import json
    globs = PYPROJECT["tool"]["setuptools"]["package-data"]
    registered = json.loads((ROOT / "datasets" / "registry.json").read_text())["files"]
    for rel in [*registered, "registry.json", "README.md"]:
        folder, _, name = rel.rpartition("/")
        package = "vmlab._data" + (f".{folder.replace('/', '.')}" if folder else "")
        assert any(fnmatch.fnmatch(name, g) for g in globs.get(package, ())), f"datasets/{rel} would not ship"
    labs = [p.name for p in (ROOT / "labs").glob("*.ipynb")]
    assert labs and all(any(fnmatch.fnmatch(n, g) for g in globs["vmlab._labs"]) for n in labs)
    assert "py.typed" in globs["vmlab"] and (ROOT / "vmlab" / "py.typed").is_file()


def test_license_file_is_the_mit_licence_pyproject_declares():
    assert PYPROJECT["project"]["license"] == "MIT"
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "Permission is hereby granted, free of charge" in text


def test_changelog_has_an_unreleased_section_and_the_current_version():
    text = (ROOT / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in text
    assert f"## [{PYPROJECT['project']['version']}]" in text


def test_bokeh_is_not_capped():
    bokeh = [r for r in PYPROJECT["project"]["optional-dependencies"]["lab"] if r.startswith("bokeh")]
    assert bokeh == ["bokeh>=3.4"], "a bokeh cap needs a one-line reason next to it in pyproject.toml"


def test_conda_and_binder_environments_are_generated_from_pyproject():
    """environment.yml and binder/environment.yml cannot drift from pyproject's pins."""
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "gen_envs.py"), "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    binder = (ROOT / "binder" / "environment.yml").read_text()
    for req in [*PYPROJECT["project"]["dependencies"], *PYPROJECT["project"]["optional-dependencies"]["lab"]]:
        assert f"  - {req}\n" in binder


def test_binder_installs_vmlab_from_the_repository_only():
    post = (ROOT / "binder" / "postBuild").read_text()
    assert os.access(ROOT / "binder" / "postBuild", os.X_OK)
    assert "pip install --no-cache-dir --no-deps ." in post
    assert not any(w in post for w in ("curl", "wget", "git clone", "http")), "Binder must reach only the registries"


def test_readme_badge_opens_lab_1_in_jupyterlab():
    readme = (ROOT / "README.md").read_text()
    assert f"https://mybinder.org/v2/gh/OWNER/vmlab/HEAD?urlpath=lab/tree/labs/{LAB1}" in readme


# --------------------------------------------------------------------------- the installed wheel


def _run(cmd, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def _tree_digest(folder: pathlib.Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts:
            h.update(str(p.relative_to(folder)).encode() + p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> pathlib.Path:
    out = tmp_path_factory.mktemp("wheelhouse")
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out), str(ROOT)])
    (whl,) = out.glob("vmlab-*.whl")
    return whl


def test_the_wheel_holds_the_data_the_labs_the_widgets_and_the_conventions(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    dist = f"vmlab-{PYPROJECT['project']['version']}.dist-info"
    assert "vmlab/py.typed" in names and "vmlab/__main__.py" in names
    assert any(n.startswith(f"{dist}/") and n.endswith("LICENSE") for n in names)
    assert "vmlab/_data/registry.json" in names and "vmlab/_data/traces/gzip.npz" in names
    assert f"vmlab/_labs/{LAB1}" in names and "vmlab/widgets/__init__.py" in names
    assert not any(n.split("/")[0] in ("widgets", "datasets", "labs", "tests") for n in names), \
        "the wheel must install nothing at the top level but vmlab"


def test_installed_wheel_runs_lab_1_from_a_fresh_copy_outside_the_repository(wheel, tmp_path):
    """The hub's path: pip install the wheel, `vmlab labs copy`, open Lab 1 (nbval checks it)."""
    venv, home = tmp_path / "venv", tmp_path / "home"
    home.mkdir()
    assert not tmp_path.resolve().is_relative_to(ROOT)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "VMLAB_DATASETS")}
    env.update(HOME=str(home), VMLAB_STATE=str(home / "state.sqlite"),
               PIP_CACHE_DIR=os.environ.get("PIP_CACHE_DIR", str(pathlib.Path.home() / ".cache" / "pip")))
    _run([sys.executable, "-m", "venv", str(venv)])
    py, bin_ = venv / "bin" / "python", venv / "bin"
    _run([str(py), "-m", "pip", "install", "--quiet", f"{wheel}[lab,test]"], env=env, cwd=home)

    where = _run([str(py), "-c", "import vmlab, vmlab.datasets as d; d.verify_registry(); print(vmlab.__file__)"],
                 env=env, cwd=home).stdout.strip()
    package = pathlib.Path(where).parent
    assert not package.is_relative_to(ROOT) and "site-packages" in package.parts
    before = _tree_digest(package)

    assert _run([str(bin_ / "vmlab"), "--version"], env=env, cwd=home).stdout.strip() == \
        f"vmlab {PYPROJECT['project']['version']}"
    copied = _run([str(bin_ / "vmlab"), "labs", "copy", "labs"], env=env, cwd=home).stdout
    assert f"copied  {home / 'labs' / LAB1}" in copied
    (home / "labs" / LAB1).write_text((home / "labs" / LAB1).read_text())  # a student's edit ...
    again = _run([str(py), "-m", "vmlab", "labs", "copy", "labs"], env=env, cwd=home).stdout
    assert f"skipped {home / 'labs' / LAB1} (exists; not overwritten)" in again  # ... is kept

    _run([str(py), "-m", "pytest", "--nbval", LAB1, "--nbval-current-env", "-p", "no:cacheprovider", "-q"],
         env=env, cwd=home / "labs")
    assert _tree_digest(package) == before, "running a lab wrote into the installed package"
    shutil.rmtree(venv, ignore_errors=True)


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_lab_binds_localhost_unless_told_and_the_venv_is_per_interpreter():
    def dry(*args):
        return _run(["make", "-n", "--no-print-directory", "-C", str(ROOT), *args]).stdout
    assert "--ip=127.0.0.1" in dry("lab")
    assert "--ip=0.0.0.0" in dry("lab", "IP=0.0.0.0")
    assert ".venv313/bin/python -m pytest tests ||" in dry("test", "VENV=.venv313", "PYTHON=python3.13")


def test_the_hub_image_recipe_installs_the_wheel_on_a_docker_stacks_base_and_copies_labs_at_start():
    docker = (ROOT / "docker" / "Dockerfile").read_text()
    assert "ARG BASE_IMAGE=quay.io/jupyter/minimal-notebook:" in docker
    assert 'pip install --no-cache-dir "$(ls /tmp/wheels/vmlab-*.whl)[lab]"' in docker
    assert "/usr/local/bin/before-notebook.d/" in docker and docker.rstrip().endswith(f"WORKDIR /home/${{NB_USER}}")
    hook = (ROOT / "docker" / "before-notebook.d" / "10-vmlab-labs.sh").read_text()
    assert 'vmlab labs copy "${HOME}/vmlab-labs"' in hook
    assert ".venv" in (ROOT / ".dockerignore").read_text()


def test_the_instructor_guide_states_measured_numbers_and_the_grader_placeholder():
    guide = (ROOT / "docs" / "instructors.md").read_text()
    for part in ("## Time per lab", "## Answer keys", "## Grading", "vmlab grade", "## Resources per student",
                 "Zero to JupyterHub", "The Littlest JupyterHub", "## Where per-user state lives",
                 "~/.local/state/vmlab/state.sqlite", "benchmarks/lab_resources.py"):
        assert part in guide, part
