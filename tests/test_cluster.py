"""The cluster launcher configs in ``cluster/*.yaml`` pass Ray's own checks, without a cloud account.

``ray up`` (``ray.autoscaler._private.commands._bootstrap_config``) does, in order:

1. ``prepare_config``: merge with the provider's ``defaults.yaml``, fold ``setup_commands`` into the head and
   worker lists, check the docker section, fill per-node-type min/max workers. Offline. Run here.
2. ``provider.fillout_available_node_types_resources``: on AWS, asks EC2 (boto3 ``describe_instance_types``)
   for CPU/GPU/memory of each instance type. Needs credentials and boto3. Skipped here, which is why the
   AWS worker's ``resources: {}`` stays empty below.
3. ``validate_config``: the JSON schema ``ray/autoscaler/ray-schema.json`` plus cross-field checks. Offline.
   Run here.
4. ``provider.bootstrap_config``: IAM role, key pair, subnets, security group, AMI. Cloud API calls. Skipped.

So the same validation as ``ray up`` runs here, minus the cloud calls. On top of that, the docker image must
carry the Ray version that is installed here and pinned in ``pyproject.toml``. A mismatch between the
launcher's Ray and the cluster's Ray is the most common way ``ray up`` goes wrong. No Ray is started and
nothing touches the network. The whole module runs in about a second.
"""
from __future__ import annotations

import copy
import re
import tomllib
from importlib import metadata
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from ray.autoscaler._private.util import check_legacy_fields, prepare_config, validate_config

ROOT = Path(__file__).resolve().parents[1]
CLUSTER_DIR = ROOT / "cluster"
PYPROJECT = ROOT / "pyproject.toml"
CONFIGS = sorted(CLUSTER_DIR.glob("*.yaml"))

IMAGE_RE = re.compile(r"^rayproject/ray:(?P<ray>\d+\.\d+\.\d+)-py(?P<py>\d)(?P<pyminor>\d+)(?:-(?P<variant>[\w.]+))?$")
"""``rayproject/ray:2.60.0-py311-gpu`` -> ray 2.60.0, Python 3.11, variant gpu."""


def _load(path: Path) -> dict:
    with path.open() as f:
        return yaml.safe_load(f)


def _ray_up_checks(config: dict) -> dict:
    """What ``ray up`` checks before it calls the cloud: legacy fields, defaults, docker, schema, cross-field.

    Returns the prepared (defaults filled in) config.
    """
    config = copy.deepcopy(config)
    check_legacy_fields(config)
    prepared = prepare_config(config)
    validate_config(prepared)
    return prepared


def _images(config: dict) -> list[str]:
    """Every docker image the config can start: global image / head_image / worker_image and per-node-type ones."""
    docker = config.get("docker", {})
    images = [docker[k] for k in ("image", "head_image", "worker_image") if docker.get(k)]
    for node_type in config.get("available_node_types", {}).values():
        if node_type.get("docker", {}).get("worker_image"):
            images.append(node_type["docker"]["worker_image"])
    return images


def _pyproject() -> dict | None:
    if not PYPROJECT.exists():
        return None
    with PYPROJECT.open("rb") as f:
        return tomllib.load(f)


def _pinned_version(project: dict, name: str) -> str | None:
    """The ``==`` version of dependency ``name`` in ``[project] dependencies`` or any optional group, else None."""
    deps = list(project.get("dependencies", []))
    for group in project.get("optional-dependencies", {}).values():
        deps += group
    for dep in deps:
        req = Requirement(dep)
        if req.name.lower() == name:
            for spec in req.specifier:
                if spec.operator in ("==", "==="):
                    return spec.version
    return None


def _setup_pins(config: dict) -> dict[str, str]:
    """``{"torch": "2.14.1", ...}`` from ``pkg==version`` tokens in the setup commands."""
    commands = " ".join(config.get("setup_commands", []) + config.get("head_setup_commands", [])
                        + config.get("worker_setup_commands", []))
    return {m.group(1).lower(): m.group(2) for m in re.finditer(r"([A-Za-z0-9_.\-]+)==([0-9][\w.]*)", commands)}


# -------------------------------------------------------------------------------------------------- fixtures
def test_cluster_configs_exist():
    assert CONFIGS, f"no cluster configs in {CLUSTER_DIR}"
    assert CLUSTER_DIR / "gpu.yaml" in CONFIGS


@pytest.fixture(params=CONFIGS, ids=[p.name for p in CONFIGS])
def config_path(request) -> Path:
    return request.param


# ------------------------------------------------------------------------------------------ Ray's validation
def test_passes_ray_up_validation(config_path):
    prepared = _ray_up_checks(_load(config_path))
    # What prepare_config filled in is what the cluster will actually run:
    head = prepared["head_node_type"]
    assert prepared["available_node_types"][head]["max_workers"] == 0
    assert all(cmd in prepared["head_setup_commands"] for cmd in prepared["setup_commands"])
    assert all(cmd in prepared["worker_setup_commands"] for cmd in prepared["setup_commands"])


BAD_EDITS = {
    "max_workers_not_int": lambda c: c.__setitem__("max_workers", "many"),
    "unknown_top_level_key": lambda c: c.__setitem__("max_worker", 4),
    "node_type_without_node_config": lambda c: next(iter(c["available_node_types"].values())).pop("node_config"),
    "negative_resource": lambda c: c["available_node_types"][c["head_node_type"]].__setitem__("resources",
                                                                                              {"CPU": -1}),
    "unknown_docker_key": lambda c: c["docker"].__setitem__("imagee", "rayproject/ray:latest"),
}


@pytest.mark.parametrize("edit", sorted(BAD_EDITS))
def test_validation_rejects_broken_copy(config_path, edit):
    """A corrupted copy fails the same checks, so the positive test above proves something."""
    config = _load(config_path)
    BAD_EDITS[edit](config)
    with pytest.raises(jsonschema.ValidationError):
        _ray_up_checks(config)


def test_validation_rejects_min_workers_over_max(config_path):
    config = _load(config_path)
    config["max_workers"] = 0
    next(t for k, t in config["available_node_types"].items() if k != config["head_node_type"])["min_workers"] = 1
    with pytest.raises(ValueError, match="max_workers"):
        _ray_up_checks(config)


def test_validation_rejects_unknown_head_type(config_path):
    config = _load(config_path)
    config["head_node_type"] = "no.such.type"
    with pytest.raises(ValueError, match="head_node_type"):
        _ray_up_checks(config)


# ------------------------------------------------------------------------------------------- version pins
def test_docker_image_matches_installed_ray(config_path):
    images = _images(_load(config_path))
    assert images, "no docker image: the cluster would run whatever Ray the machine image has"
    for image in images:
        m = IMAGE_RE.match(image)
        assert m, f"{image!r} is not a pinned rayproject/ray:<version>-py<xy>[-<variant>] tag"
        assert m["ray"] == ray.__version__, (
            f"{config_path.name}: image {image} runs Ray {m['ray']}, but this environment has Ray "
            f"{ray.__version__}; `ray up` and `ray job submit` need the same version on both sides")


def test_docker_image_matches_pyproject_pin(config_path):
    pyproject = _pyproject()
    if pyproject is None:
        pytest.skip(f"{PYPROJECT} not written yet")
    pin = _pinned_version(pyproject["project"], "ray")
    assert pin, "pyproject.toml must pin ray with == (the cluster image tag has to name one exact version)"
    assert pin == ray.__version__, f"pyproject pins ray=={pin} but Ray {ray.__version__} is installed"
    requires_python = pyproject["project"].get("requires-python")
    for image in _images(_load(config_path)):
        m = IMAGE_RE.match(image)
        assert m and m["ray"] == pin, f"{config_path.name}: image {image} does not carry ray=={pin}"
        if requires_python:
            py = f"{m['py']}.{m['pyminor']}"
            assert SpecifierSet(requires_python).contains(py), (
                f"image Python {py} is outside requires-python {requires_python!r}")


def test_setup_commands_pin_torch_like_this_environment(config_path):
    """The cluster installs the torch/torchvision versions the tests run with (and pyproject allows)."""
    pins = _setup_pins(_load(config_path))
    pyproject = _pyproject()
    for pkg in ("torch", "torchvision"):
        assert pkg in pins, f"{config_path.name}: setup_commands should pin {pkg}==<version>"
        installed = metadata.version(pkg).split("+")[0]
        assert pins[pkg] == installed, f"{config_path.name} pins {pkg}=={pins[pkg]}, tests run {installed}"
        if pyproject is not None:
            for dep in pyproject["project"].get("dependencies", []):
                req = Requirement(dep)
                if req.name.lower() == pkg:
                    assert req.specifier.contains(pins[pkg], prereleases=True), (
                        f"{pkg}=={pins[pkg]} is outside pyproject's {req}")


# ------------------------------------------------------------------------------------- layout decisions
def test_head_runs_no_training_and_workers_scale_from_zero(config_path):
    config = _load(config_path)
    head = config["available_node_types"][config["head_node_type"]]
    assert head["resources"].get("CPU") == 0, "the head must advertise CPU 0 so no trial worker lands there"
    assert not head["resources"].get("GPU")
    workers = [t for k, t in config["available_node_types"].items() if k != config["head_node_type"]]
    assert workers and all(t.get("min_workers", 0) == 0 for t in workers), "GPU workers scale from zero"
    assert all(t.get("max_workers", config["max_workers"]) <= config["max_workers"] for t in workers)


def test_dashboard_not_exposed(config_path):
    """8265 (dashboard + job API = remote code execution) stays behind the SSH tunnel of `ray dashboard`."""
    config = _load(config_path)
    for rule in config.get("provider", {}).get("security_group", {}).get("IpPermissions", []):
        low, high = rule.get("FromPort", -1), rule.get("ToPort", -1)
        covers_8265 = low == -1 or low <= 8265 <= high
        from_addresses = rule.get("IpRanges") or rule.get("Ipv6Ranges")
        assert not (covers_8265 and from_addresses), f"security group rule opens 8265 to addresses: {rule}"
    head_start = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=0.0.0.0" not in head_start


def test_project_checkout_is_mounted_and_installed(config_path):
    config = _load(config_path)
    mounts = config.get("file_mounts", {})
    assert mounts.get("~/tuneae") == ".", "the checkout is synced from the directory `ray up` runs in"
    assert (ROOT / "cluster" / config_path.name).exists()
    assert any("pip install" in c and "-e ~/tuneae" in c for c in config["setup_commands"])
