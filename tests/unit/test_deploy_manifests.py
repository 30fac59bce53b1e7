"""The Kubernetes manifests in deploy/k8s, checked as a cluster would check them, offline:

- every object of a Kubernetes kind against the Kubernetes schemas (``kubernetes-validate``,
  strictly: an unknown field is an error, as ``kubectl apply --validate=strict`` says), for the
  oldest and the newest version it knows;
- every KEDA ScaledObject against the schema of KEDA's own CRD, kept in deploy/k8s/schemas/, an
  unknown field an error too;
- every agent of the example team has its Deployment (serving its queue) and its ScaledObject
  (scaling that Deployment), whose queue-depth triggers name every priority band of the queue
  and are all summed by the scaling formula."""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from bus.broker_view import SEP
from bus.priorities import PRIORITY_STEPS

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
CRD = K8S / "schemas" / "keda.sh_scaledobjects.yaml"
VERSIONS = ("1.28.0", kubernetes_validate.latest_version())
KEDA = "keda.sh/v1alpha1"


def _objects() -> list[tuple[str, dict[str, Any]]]:
    """(file name, object) for every object of every manifest (the CRD kept for tests aside)."""
    return [
        (path.name, document)
        for path in sorted(K8S.glob("*.yaml"))
        for document in yaml.safe_load_all(path.read_text())
        if document
    ]


def _named(kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for _, o in _objects() if o["kind"] == kind}


@cache
def _scaled_object_schema() -> dict[str, Any]:
    crd = next(d for d in yaml.safe_load_all(CRD.read_text()) if d)
    [version] = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
    return _strict(version["schema"]["openAPIV3Schema"])


def _strict(schema: Any) -> Any:
    """The schema with unknown fields refused wherever it names the fields an object may have
    (the API server prunes them silently; a typo there would never scale anything)."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    strict = {key: _strict(value) for key, value in schema.items()}
    if (
        "properties" in strict
        and "additionalProperties" not in strict
        and not strict.get("x-kubernetes-preserve-unknown-fields")
    ):
        strict["additionalProperties"] = False
    return strict


KUBERNETES = [(name, o) for name, o in _objects() if o["apiVersion"] != KEDA]
SCALED = [(name, o) for name, o in _objects() if o["apiVersion"] == KEDA]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    ("name", "manifest"), KUBERNETES, ids=[f"{n}:{o['kind']}" for n, o in KUBERNETES]
)
def test_every_kubernetes_object_is_valid_for_the_api_server(
    name: str, manifest: dict[str, Any], version: str
) -> None:
    kubernetes_validate.validate(manifest, version, strict=True)


@pytest.mark.parametrize(("name", "manifest"), SCALED, ids=[n for n, _ in SCALED])
def test_every_scaled_object_is_valid_for_kedas_crd(name: str, manifest: dict[str, Any]) -> None:
    jsonschema.validate(manifest, _scaled_object_schema())


def test_a_misspelled_field_is_caught_by_both_checks() -> None:
    deployment = _named("Deployment")["agent-researcher"]
    wrong = {**deployment, "spec": {**deployment["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong, VERSIONS[0], strict=True)
    scaled = _named("ScaledObject")["agent-researcher"]
    typo = {**scaled, "spec": {**scaled["spec"], "minReplicas": 1}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(typo, _scaled_object_schema())


def _agents_of_the_example_team() -> list[str]:
    """The ids of the agents examples/team.py defines (``Agent(id="...")``), read from its
    source: importing it would make an Orchestrator, and set this process's logging up, while
    the tests are being collected."""
    tree = ast.parse((ROOT / "examples" / "team.py").read_text())
    return sorted(
        keyword.value.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Agent"
        for keyword in node.keywords
        if keyword.arg == "id" and isinstance(keyword.value, ast.Constant)
    )


def _bands(queue: str) -> set[str]:
    """The Redis lists of ``queue``: one per priority step, the first under the bare name."""
    return {queue if step == 0 else f"{queue}{SEP}{step}" for step in PRIORITY_STEPS}


@pytest.mark.parametrize("agent", _agents_of_the_example_team())
def test_every_agent_of_the_example_team_has_a_deployment_and_scales_on_its_whole_queue(
    agent: str,
) -> None:
    deployment = _named("Deployment").get(f"agent-{agent}")
    assert deployment is not None, f"no Deployment agent-{agent} in deploy/k8s"
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    command = container["command"]
    assert command[command.index("--agents") + 1] == agent

    scaled = _named("ScaledObject").get(f"agent-{agent}")
    assert scaled is not None, f"no ScaledObject agent-{agent} in deploy/k8s"
    assert scaled["spec"]["scaleTargetRef"]["name"] == f"agent-{agent}"
    triggers = scaled["spec"]["triggers"]
    assert {t["metadata"]["listName"] for t in triggers} == _bands(f"agent.{agent}")
    formula = scaled["spec"]["advanced"]["scalingModifiers"]["formula"]
    assert set(re.findall(r"[a-z]\w*", formula)) == {t["name"] for t in triggers}
    assert formula.count("+") == len(triggers) - 1  # their sum, not the fullest band


def test_the_agents_with_a_deployment_are_the_example_teams() -> None:
    deployed = {name.removeprefix("agent-") for name in _named("Deployment") if "agent-" in name}
    assert deployed == set(_agents_of_the_example_team()) != set()
