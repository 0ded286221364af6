#!/usr/bin/env python3
"""The parameters example matches the template: every key it sets is a parameter of the
template, every parameter without a default is set, and each value passes the parameter's
AllowedValues, AllowedPattern and MinValue/MaxValue. And the template itself: its drain times
agree (deregistration delay, shutdown grace, stop timeout), the hardening checkov has no
CloudFormation rule for is there, and the optional Redis reaches the tasks (URL and token).

Usage (with cfn-lint's Python, which reads CloudFormation's YAML tags):
  python check_parameters.py TEMPLATE PARAMETERS_JSON
"""

import json
import re
import sys

from cfnlint.decode import decode


def main(template_path: str, parameters_path: str) -> list[str]:
    template, matches = decode(template_path)
    if matches:
        return [f"cannot read {template_path}: {matches}"]
    declared = template["Parameters"]
    given = {p["ParameterKey"]: p["ParameterValue"] for p in json.load(open(parameters_path))}
    problems = [f"{key} is not a parameter of the template" for key in given if key not in declared]
    for key, spec in declared.items():
        if key not in given:
            if "Default" not in spec:
                problems.append(f"{key} has no default and is not set")
            continue
        value = given[key]
        values = value.split(",") if spec["Type"].startswith(("List<", "CommaDelimitedList")) else [value]
        for v in values:
            if "AllowedValues" in spec and v not in [str(a) for a in spec["AllowedValues"]]:
                problems.append(f"{key}={v!r} is not one of {spec['AllowedValues']}")
            if "AllowedPattern" in spec and not re.fullmatch(spec["AllowedPattern"], v):
                problems.append(f"{key}={v!r} does not match {spec['AllowedPattern']}")
            if spec["Type"] == "Number":
                n = float(v)
                if "MinValue" in spec and n < float(spec["MinValue"]):
                    problems.append(f"{key}={v} is under {spec['MinValue']}")
                if "MaxValue" in spec and n > float(spec["MaxValue"]):
                    problems.append(f"{key}={v} is over {spec['MaxValue']}")
    problems += drain_problems(template)
    problems += hardening_problems(template)
    problems += redis_problems(template)
    return problems


def redis_problems(template) -> list[str]:
    """With CreateRedis the tasks are told where the cache's Redis is and its AUTH token: the
    URL (rediss://, as the group encrypts in transit) in the environment, the token as a
    secret from RedisAuthToken, which the execution role may read, that secret alone. Each
    only under WithRedis, so a stack without Redis references nothing that is not there."""
    resources = template["Resources"]
    problems = []
    (container,) = resources["TaskDefinition"]["Properties"]["ContainerDefinitions"]

    def conditional(entries, condition):
        """The entries given only under `condition` (Fn::If [condition, entry, NoValue])."""
        out = []
        for entry in entries:
            branches = entry.get("Fn::If") if isinstance(entry, dict) else None
            if branches and branches[0] == condition and branches[2] == {"Ref": "AWS::NoValue"}:
                out.append(branches[1])
        return out

    names = lambda entries: [e.get("Name") for e in entries if isinstance(e, dict)]
    for kind in ("Environment", "Secrets"):
        for name in ("WARMGATE_CACHE__REDIS__URL", "WARMGATE_CACHE__REDIS__PASSWORD"):
            if name in names(container.get(kind, [])):
                problems.append(f"{name} is in the container's {kind} whatever CreateRedis says")
    urls = [e for e in conditional(container.get("Environment", []), "WithRedis") if e.get("Name") == "WARMGATE_CACHE__REDIS__URL"]
    want_url = {"Fn::Sub": "rediss://${Redis.PrimaryEndPoint.Address}:${Redis.PrimaryEndPoint.Port}"}
    if len(urls) != 1 or urls[0].get("Value") != want_url:
        problems.append(f"with Redis, WARMGATE_CACHE__REDIS__URL is {urls}, not one entry of {want_url}")
    passwords = [e for e in conditional(container.get("Secrets", []), "WithRedis") if e.get("Name") == "WARMGATE_CACHE__REDIS__PASSWORD"]
    if len(passwords) != 1 or passwords[0].get("ValueFrom") != {"Ref": "RedisAuthToken"}:
        problems.append(f"with Redis, WARMGATE_CACHE__REDIS__PASSWORD is {passwords}, not one entry from RedisAuthToken")
    if not resources["Redis"]["Properties"].get("TransitEncryptionEnabled"):
        problems.append("Redis does not encrypt in transit, yet the tasks are given rediss://")

    statements = [
        statement
        for policy in resources["ExecutionRole"]["Properties"]["Policies"]
        for statement in policy["PolicyDocument"]["Statement"]
    ]
    reads = [
        s for s in conditional(statements, "WithRedis") if s.get("Action") == "secretsmanager:GetSecretValue"
    ]
    if [s.get("Resource") for s in reads] != [{"Ref": "RedisAuthToken"}]:
        problems.append(f"with Redis, the execution role reads secrets {reads}, not RedisAuthToken alone")
    flat = statements + [b for s in statements if isinstance(s, dict) and "Fn::If" in s for b in s["Fn::If"][1:]]
    for statement in flat:
        if isinstance(statement, dict) and "secretsmanager" in str(statement.get("Action")) and statement.get("Resource") == "*":
            problems.append("the execution role may read every secret")
    return problems


def hardening_problems(template) -> list[str]:
    """What checkov has no CloudFormation rule for: the container runs as user 65532 on a
    read-only root filesystem, unprivileged, every capability dropped; the load balancer checks
    /readyz; the task role may do three things to Lambda and nothing else."""
    resources = template["Resources"]
    problems = []
    (container,) = resources["TaskDefinition"]["Properties"]["ContainerDefinitions"]
    expect = {
        "User": "65532:65532",
        "ReadonlyRootFilesystem": True,
        "Privileged": False,
    }
    for key, value in expect.items():
        if container.get(key) != value:
            problems.append(f"container {key} is {container.get(key)!r}, not {value!r}")
    if container.get("LinuxParameters", {}).get("Capabilities", {}).get("Drop") != ["ALL"]:
        problems.append("the container does not drop every capability")
    if resources["TargetGroup"]["Properties"].get("HealthCheckPath") != "/readyz":
        problems.append("the target group does not check /readyz")
    listed = [
        statement
        for policy in resources["TaskRole"]["Properties"]["Policies"]
        for statement in policy["PolicyDocument"]["Statement"]
    ]
    statements = [s for s in listed if "Fn::If" not in s]
    actions = sorted(a for statement in statements for a in statement["Action"])
    wanted = ["lambda:GetFunctionConfiguration", "lambda:GetProvisionedConcurrencyConfig", "lambda:InvokeFunction"]
    if actions != wanted:
        problems.append(f"the task role allows {actions}, not exactly {wanted}")
    # Setting provisioned concurrency only with AllowProvisioning, and only that.
    conditional = [s["Fn::If"] for s in listed if "Fn::If" in s]
    setting = [b[1] for b in conditional if b[0] == "WithProvisioning" and b[2] == {"Ref": "AWS::NoValue"}]
    if len(conditional) != 1 or len(setting) != 1:
        problems.append(f"the task role's conditional statements are {conditional}, not one under WithProvisioning")
    else:
        actions = sorted(setting[0]["Action"])
        wanted = ["lambda:DeleteProvisionedConcurrencyConfig", "lambda:PutProvisionedConcurrencyConfig"]
        if actions != wanted:
            problems.append(f"with AllowProvisioning the task role allows {actions}, not exactly {wanted}")
        statements.append(setting[0])
    if any(statement["Resource"] == "*" for statement in statements):
        problems.append("the task role allows a resource *")
    return problems


def drain_problems(template) -> list[str]:
    """Every DrainSeconds the template allows maps to a shutdown grace of that many seconds
    and a stop timeout 10 s longer, within Fargate's 120 s; the target group's deregistration
    delay is DrainSeconds itself."""
    problems = []
    drain = template["Mappings"]["Drain"]
    for seconds in template["Parameters"]["DrainSeconds"]["AllowedValues"]:
        entry = drain.get(str(seconds))
        if entry is None:
            problems.append(f"DrainSeconds {seconds} has no entry in Mappings.Drain")
            continue
        if int(entry["GraceMs"]) != int(seconds) * 1000:
            problems.append(f"Drain {seconds}: GraceMs {entry['GraceMs']} is not {seconds} s")
        if int(entry["StopTimeout"]) != int(seconds) + 10 or int(entry["StopTimeout"]) > 120:
            problems.append(f"Drain {seconds}: StopTimeout {entry['StopTimeout']} is not {seconds} + 10 (at most 120)")
    attributes = template["Resources"]["TargetGroup"]["Properties"]["TargetGroupAttributes"]
    delay = [a["Value"] for a in attributes if a["Key"] == "deregistration_delay.timeout_seconds"]
    if delay != [{"Ref": "DrainSeconds"}]:
        problems.append(f"the target group's deregistration delay is {delay}, not DrainSeconds")
    return problems


if __name__ == "__main__":
    found = main(*sys.argv[1:3])
    for problem in found:
        print(f"FAILED: {problem}", file=sys.stderr)
    if not found:
        print(f"{sys.argv[2]} sets only the template's parameters, all it must, with allowed values; drain times agree; the container and task role are locked down; Redis is wired to the tasks when created")
    sys.exit(1 if found else 0)
