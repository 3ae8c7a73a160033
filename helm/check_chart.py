"""Checks on the rendered feedback-service chart that schemas cannot express (run by `make helm-check`).

Given the `helm template` output of the CI values files (helm/feedback-service/ci/*.yaml), it checks:
no secret value is rendered, only references to existing Secrets; the Deployment has no `replicas`
when the HPA is on, and a PodDisruptionBudget exactly when more than one replica runs; the pods are
hardened and probed over native gRPC health; the HTTP port is served and exposed, with the CORS
origins of the values and an Ingress to it exactly when enabled; FEEDBACK_PUBLIC_URL (the base of
reviewer console links) as given, derived from the Ingress host and TLS, or unset; the grace period
outlasts the service's drain; the migration Job is a hook with the pods' settings; and the settings load with the
service's own parser. Then it renders a few broken values and checks that Helm refuses them with a
clear message.

    python helm/check_chart.py --helm <helm binary> <name>=<rendered.yaml> ...
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from feedback_service.config import OPTIONS, ConfigError, load_settings

CHART = Path(__file__).resolve().parent / "feedback-service"
README = CHART.parent / "README.md"
SECRET_VARIABLES = {"FEEDBACK_CLICKHOUSE_URL", "FEEDBACK_ADMIN_KEY", "FEEDBACK_TOKEN_SECRETS"}
KNOWN_VARIABLES = {option.env for option in OPTIONS}
# Credentials in a URL (scheme://user:password@host), the shape of FEEDBACK_CLICKHOUSE_URL.
CREDENTIALS_IN_URL = re.compile(r"[a-z]+://[^\s/@:\"']+:[^\s/@\"']+@")
READINESS_SERVICE = "feedback.v1.FeedbackService"
TMP = "/tmp"  # noqa: S108 (where the pods mount their emptyDir, not a file this script writes)

Manifest = dict[str, Any]


class CheckError(AssertionError):
    pass


def check(condition: object, message: str) -> None:
    if not condition:
        raise CheckError(message)


def load(path: Path) -> list[Manifest]:
    return [document for document in yaml.safe_load_all(path.read_text()) if document]


def one(manifests: list[Manifest], kind: str, suffix: str = "") -> Manifest:
    found = [m for m in manifests if m["kind"] == kind and m["metadata"]["name"].endswith(suffix)]
    check(len(found) == 1, f"expected one {kind}{' *' + suffix if suffix else ''}, found {len(found)}")
    return found[0]


def pod_specs(manifests: list[Manifest]) -> Iterator[tuple[str, Manifest]]:
    for manifest in manifests:
        name = f"{manifest['kind']}/{manifest['metadata']['name']}"
        if manifest["kind"] in ("Deployment", "Job"):
            yield name, manifest["spec"]["template"]["spec"]
        elif manifest["kind"] == "Pod":
            yield name, manifest["spec"]


def check_no_secret_values(text: str, manifests: list[Manifest]) -> None:
    check(not [m for m in manifests if m["kind"] == "Secret"], "the chart must not create Secrets")
    check(not CREDENTIALS_IN_URL.search(text), "a URL with credentials is rendered")
    config_map = one(manifests, "ConfigMap")
    check(not SECRET_VARIABLES & set(config_map["data"]), "a secret setting is in the ConfigMap")
    for name, spec in pod_specs(manifests):
        for container in spec["containers"]:
            for variable in container.get("env", []):
                if variable["name"] in SECRET_VARIABLES:
                    check("value" not in variable, f"{name}: {variable['name']} has a literal value")
                    reference = variable.get("valueFrom", {}).get("secretKeyRef", {})
                    check(
                        reference.get("name") and reference.get("key"), f"{name}: {variable['name']} is no secretKeyRef"
                    )


def check_hardened(manifests: list[Manifest]) -> None:
    for name, spec in pod_specs(manifests):
        pod = spec.get("securityContext", {})
        check(pod.get("runAsNonRoot") is True, f"{name}: runAsNonRoot")
        check(pod.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{name}: seccomp RuntimeDefault")
        check(spec.get("automountServiceAccountToken") is False, f"{name}: no API token")
        for container in spec["containers"]:
            context = container.get("securityContext", {})
            check(context.get("readOnlyRootFilesystem") is True, f"{name}: read-only root filesystem")
            check(context.get("allowPrivilegeEscalation") is False, f"{name}: allowPrivilegeEscalation false")
            check(context.get("capabilities", {}).get("drop") == ["ALL"], f"{name}: drop ALL capabilities")
            check(context.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{name}: container seccomp")
        if spec["containers"][0]["name"] in ("feedback-service", "migrate"):
            tmp = {v["name"]: v for v in spec["volumes"]}.get("tmp", {})
            check("emptyDir" in tmp, f"{name}: /tmp is an emptyDir")
            mounts = {m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
            check(TMP in mounts, f"{name}: /tmp mounted")


def pod_environment(config_map: Manifest, container: Manifest) -> dict[str, str]:
    environment = dict(config_map["data"]) if container.get("envFrom") else {}
    for variable in container.get("env", []):
        if "value" in variable:
            environment[variable["name"]] = variable["value"]
        elif variable["name"] in SECRET_VARIABLES:  # stand-ins: the real values live in the Secrets
            environment[variable["name"]] = {
                "FEEDBACK_CLICKHOUSE_URL": "https://stand-in.invalid:8443",
                "FEEDBACK_ADMIN_KEY": "a" * 32,
                "FEEDBACK_TOKEN_SECRETS": "b" * 32,
            }[variable["name"]]
    return environment


def check_service_pods(
    manifests: list[Manifest], *, hpa: bool, replicas: int, cors: tuple[str, ...], public_url: str | None
) -> None:
    deployment = one(manifests, "Deployment")
    config_map = one(manifests, "ConfigMap")
    spec = deployment["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    if hpa:
        check("replicas" not in deployment["spec"], "the HPA is on but the Deployment sets replicas")
        one(manifests, "HorizontalPodAutoscaler")
    else:
        check(deployment["spec"].get("replicas") == replicas, f"Deployment replicas should be {replicas}")
        check(not [m for m in manifests if m["kind"] == "HorizontalPodAutoscaler"], "an HPA without autoscaling")
    budgets = [m for m in manifests if m["kind"] == "PodDisruptionBudget"]
    check(len(budgets) == (1 if replicas > 1 else 0), f"{len(budgets)} PodDisruptionBudgets for {replicas} replicas")

    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    check(ports == {"grpc": 50051, "http": 8080, "metrics": 9464}, f"container ports {ports}")
    liveness, readiness = container["livenessProbe"]["grpc"], container["readinessProbe"]["grpc"]
    check(liveness["port"] == 50051 and not liveness.get("service"), "liveness: overall gRPC health status")
    check(readiness == {"port": 50051, "service": READINESS_SERVICE}, f"readiness: {READINESS_SERVICE}")
    service_ports = {
        p["name"]: p["port"] for p in one(manifests, "Service", deployment["metadata"]["name"])["spec"]["ports"]
    }
    check(service_ports == {"grpc": 50051, "http": 8080, "metrics": 9464}, f"Service ports {service_ports}")

    environment = pod_environment(config_map, container)
    check(environment.get("FEEDBACK_SKIP_MIGRATIONS") == "true", "pods must set FEEDBACK_SKIP_MIGRATIONS=true")
    unknown = {n for n in environment if n.startswith("FEEDBACK_")} - KNOWN_VARIABLES
    check(not unknown, f"settings the service does not know: {sorted(unknown)}")
    try:
        settings = load_settings(argparse.Namespace(), environment)
    except ConfigError as error:
        raise CheckError(f"the service refuses the rendered settings: {error}") from error
    check(settings.listen == "0.0.0.0:50051" and settings.metrics_listen == "0.0.0.0:9464", "listen addresses")
    check(settings.http_listen == "0.0.0.0:8080", f"the HTTP face listens on 0.0.0.0:8080, not {settings.http_listen}")
    check(settings.cors_origins == cors, f"CORS origins {settings.cors_origins}, expected {cors}")
    if public_url is None:
        check(
            "FEEDBACK_PUBLIC_URL" not in environment,
            "FEEDBACK_PUBLIC_URL is set without config.publicUrl or an Ingress",
        )
    check(settings.public_url == public_url, f"public URL {settings.public_url}, expected {public_url}")
    check(settings.clickhouse_url and settings.skip_migrations and settings.log_format == "json", "pod settings")

    pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", ["sleep", "0"])
    drain = float(pre_stop[1]) + settings.shutdown_grace_s
    grace = spec["terminationGracePeriodSeconds"]
    check(grace > drain, f"terminationGracePeriodSeconds {grace} must outlast preStop + shutdown grace ({drain} s)")


def check_ingress(manifests: list[Manifest], *, hosts: tuple[str, ...]) -> None:
    """An Ingress exactly when enabled, routing its hosts to the Service's HTTP port, with TLS as given."""
    ingresses = [m for m in manifests if m["kind"] == "Ingress"]
    if not hosts:
        check(not ingresses, "an Ingress without ingress.enabled")
        return
    ingress = one(manifests, "Ingress")
    service = one(manifests, "Service", one(manifests, "Deployment")["metadata"]["name"])
    rules = ingress["spec"]["rules"]
    check(tuple(rule["host"] for rule in rules) == hosts, f"Ingress hosts {[rule['host'] for rule in rules]}")
    for rule in rules:
        (path,) = rule["http"]["paths"]
        backend = path["backend"]["service"]
        check(backend == {"name": service["metadata"]["name"], "port": {"name": "http"}}, f"Ingress backend {backend}")
        check((path["path"], path["pathType"]) == ("/", "Prefix"), f"Ingress path {path}")
    tls_hosts = {host for entry in ingress["spec"].get("tls", []) for host in entry["hosts"]}
    check(tls_hosts == set(hosts), f"Ingress TLS covers {sorted(tls_hosts)}, expected {sorted(hosts)}")


def rendered_public_url(helm: str, *arguments: str) -> str | None:
    """FEEDBACK_PUBLIC_URL of the ConfigMap rendered with these arguments, None when unset."""
    result = helm_template(helm, *arguments)
    check(result.returncode == 0, f"rendering with {arguments} fails: {result.stderr.strip()}")
    data = one([m for m in yaml.safe_load_all(result.stdout) if m], "ConfigMap")["data"]
    if "FEEDBACK_PUBLIC_URL" not in data:
        return None
    return load_settings(argparse.Namespace(), {"FEEDBACK_PUBLIC_URL": data["FEEDBACK_PUBLIC_URL"]}).public_url


def check_public_url(helm: str) -> None:
    """config.publicUrl wins; else the first non-wildcard Ingress host, https:// when TLS covers it."""
    default, cluster = (str(CHART / "ci" / f"{name}-values.yaml") for name in ("default", "cluster"))
    ingress = "ingress.enabled=true,ingress.hosts={feedback.example.com}"
    cases = {
        "Ingress without TLS": (["-f", default, "--set", ingress], "http://feedback.example.com"),
        "Ingress with TLS": (
            [
                "-f",
                default,
                "--set",
                ingress + ",ingress.tls[0].secretName=tls,ingress.tls[0].hosts={feedback.example.com}",
            ],
            "https://feedback.example.com",
        ),
        "wildcard host and TLS, a path": (
            [
                "-f",
                default,
                "--set",
                "ingress.enabled=true,ingress.hosts={*.example.com,feedback.example.com},ingress.path=/reviews/,"
                "ingress.tls[0].secretName=tls,ingress.tls[0].hosts={*.example.com}",
            ],
            "https://feedback.example.com/reviews",
        ),
        "TLS for another host": (
            [
                "-f",
                default,
                "--set",
                ingress + ",ingress.tls[0].secretName=tls,ingress.tls[0].hosts={other.example.com}",
            ],
            "http://feedback.example.com",
        ),
        "only wildcard hosts": (["-f", default, "--set", "ingress.enabled=true,ingress.hosts={*.example.com}"], None),
        "cluster values without config.publicUrl": (
            ["-f", cluster, "--set", "config.publicUrl="],
            "https://feedback.example.com",
        ),
        "config.publicUrl without an Ingress": (
            ["-f", default, "--set", "config.publicUrl=http://10.0.0.5:8080/review"],
            "http://10.0.0.5:8080/review",
        ),
    }
    for name, (arguments, expected) in cases.items():
        found = rendered_public_url(helm, *arguments)
        check(found == expected, f"{name}: FEEDBACK_PUBLIC_URL {found}, expected {expected}")


def check_migration_job(manifests: list[Manifest]) -> None:
    job = one(manifests, "Job", "-migrate")
    annotations = job["metadata"]["annotations"]
    check(annotations["helm.sh/hook"] == "pre-install,pre-upgrade", "migration Job hooks")
    check(annotations["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded", "hook delete policy")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    check(container["args"] == ["migrate"], "the Job runs `feedback migrate`")
    deployment = one(manifests, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    check(container["image"] == deployment["image"], "the Job runs the pods' image")
    config_map = one(manifests, "ConfigMap")
    job_environment = pod_environment({"data": {}}, container)
    pod_env = pod_environment(config_map, deployment)
    pod_env.pop("FEEDBACK_SKIP_MIGRATIONS")
    check(job_environment == pod_env, "the Job has the pods' settings (without FEEDBACK_SKIP_MIGRATIONS)")
    load_settings(argparse.Namespace(), job_environment)


def check_helm_test(manifests: list[Manifest]) -> None:
    pod = one(manifests, "Pod", "-test-health")
    check(pod["metadata"]["annotations"]["helm.sh/hook"] == "test", "the test pod is a helm test hook")
    services = {arg for c in pod["spec"]["containers"] for arg in c["args"] if arg.startswith("-service=")}
    check(services == {f"-service={READINESS_SERVICE}"} and len(pod["spec"]["containers"]) == 2, "test checks")


def leaf_paths(node: object, prefix: str = "") -> Iterator[str]:
    if isinstance(node, dict) and node:
        for key, child in node.items():
            yield from leaf_paths(child, f"{prefix}{key}.")
    else:
        yield prefix.rstrip(".")


def check_documented() -> None:
    """Every value has a `## @param` in values.yaml, a schema entry and a row in helm/README.md."""
    text = (CHART / "values.yaml").read_text()
    values = yaml.safe_load(text)
    schema = json.loads((CHART / "values.schema.json").read_text())
    readme = README.read_text()
    documented = re.findall(r"^\s*## @param (\S+) ", text, re.MULTILINE)
    for path in documented:
        node: Any = values
        properties: Any = schema
        for part in path.split("."):
            check(isinstance(node, dict) and part in node, f"@param {path} is not a value")
            node = node[part]
            properties = properties.get("properties", {})
            check(part in properties, f"{path} is not in values.schema.json")
            properties = properties[part]
        check(f"| `{path}` |" in readme, f"{path} is not in the values table of helm/README.md")
    for leaf in leaf_paths(values):
        covered = any(leaf == path or leaf.startswith(path + ".") for path in documented)
        check(covered, f"value {leaf} has no ## @param in values.yaml")


def helm_template(helm: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    command = [helm, "template", "check", str(CHART), "--kube-version", "1.29.0", *arguments]
    return subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603


def check_refusals(helm: str) -> None:
    """Broken values fail rendering with a message that says what to do."""
    ci_values = str(CHART / "ci" / "default-values.yaml")
    refusals = {
        "no ClickHouse URL Secret": ([], "clickhouse.existingSecret is required"),
        "grace period too short": (
            ["-f", ci_values, "--set", "terminationGracePeriodSeconds=15"],
            "terminationGracePeriodSeconds (15) must be longer than preStopSleepSeconds + "
            "config.shutdownGraceSeconds (15 s)",
        ),
        "unknown value": (["-f", ci_values, "--set", "replicas=3"], "Additional property replicas is not allowed"),
        "wrong type": (["-f", ci_values, "--set", "config.logFormat=xml"], "config.logFormat must be one of"),
        "HPA min above max": (
            ["-f", ci_values, "--set", "autoscaling.enabled=true,autoscaling.minReplicas=5,autoscaling.maxReplicas=2"],
            "autoscaling.minReplicas (5) is more than autoscaling.maxReplicas (2)",
        ),
        "Ingress without hosts": (
            ["-f", ci_values, "--set", "ingress.enabled=true"],
            "ingress.enabled needs ingress.hosts",
        ),
        "CORS wildcard": (["-f", ci_values, "--set", "config.corsOrigins={*}"], "config.corsOrigins.0"),
        "public URL without a scheme": (
            ["-f", ci_values, "--set", "config.publicUrl=feedback.example.com"],
            "config.publicUrl: Does not match pattern",
        ),
    }
    for name, (arguments, message) in refusals.items():
        result = helm_template(helm, *arguments)
        check(result.returncode != 0, f"{name}: rendering should fail")
        check(message in result.stderr, f"{name}: expected {message!r} in: {result.stderr.strip()}")
    accepted = helm_template(helm, "-f", ci_values, "--set", "terminationGracePeriodSeconds=16")
    check(accepted.returncode == 0, f"a long enough grace period is accepted: {accepted.stderr.strip()}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--helm", required=True, help="the helm binary")
    parser.add_argument("renderings", nargs="+", metavar="NAME=FILE", help="default=... and cluster=...")
    arguments = parser.parse_args()
    renderings = dict(item.split("=", 1) for item in arguments.renderings)
    # What the CI values files ask for: (HPA on, replicas or HPA minReplicas), CORS origins, Ingress hosts,
    # public URL (FEEDBACK_PUBLIC_URL as the service reads it; None = unset).
    expected = {
        "default": (False, 1, (), (), None),
        "cluster": (
            True,
            3,
            ("https://app.example.com", "https://shop.example.com:8443"),
            ("feedback.example.com",),
            "https://review.example.com",
        ),
    }
    check(set(renderings) == set(expected), f"renderings must be {sorted(expected)}")
    for name, path in renderings.items():
        text = Path(path).read_text()
        manifests = load(Path(path))
        check_no_secret_values(text, manifests)
        check_hardened(manifests)
        hpa, replicas, cors, hosts, public_url = expected[name]
        check_service_pods(manifests, hpa=hpa, replicas=replicas, cors=cors, public_url=public_url)
        check_ingress(manifests, hosts=hosts)
        check_migration_job(manifests)
        check_helm_test(manifests)
        print(f"helm/check_chart.py: {name}: {len(manifests)} resources pass")
    check_public_url(arguments.helm)
    print("helm/check_chart.py: FEEDBACK_PUBLIC_URL is config.publicUrl, else derived from the Ingress, else unset")
    check_refusals(arguments.helm)
    check_documented()
    print("helm/check_chart.py: broken values are refused with clear messages; every value is documented")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except CheckError as failure:
        print(f"helm/check_chart.py: FAILED: {failure}", file=sys.stderr)
        sys.exit(1)
