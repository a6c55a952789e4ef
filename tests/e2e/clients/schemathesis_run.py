"""Schemathesis (PyPI) against a running Valhalla's /openapi.json.

Reads {"base_url", "api_key", "max_examples", "seed", "workers", "report"} as JSON on stdin,
runs `schemathesis run` with every check (the exemptions, each with its reason, are in
schemathesis.toml beside this file) over the examples, coverage and fuzzing phases, and
prints {"exit_code", "generated", "operations", "failures", "errors", "output"} as JSON for
the Rust test (tests/e2e/schemathesis.rs) to assert on.
"""

import json
import os
import subprocess
import sys


def run_pass(spec, here, cli, one):
    report = os.path.join(spec["report_dir"], one["name"] + ".json")
    cmd = [
        cli,
        "--config-file",
        os.path.join(here, "schemathesis.toml"),
        "--no-color",
        "run",
        spec["base_url"] + "/openapi.json",
        "--header",
        "X-API-Key: " + spec["api_key"],
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        str(spec["max_examples"]),
        "--seed",
        str(spec["seed"]),
        "--workers",
        str(spec["workers"]),
        "--request-timeout",
        "30",
        "--generation-database",
        "none",
        "--report",
        "json",
        "--report-json-path",
        report,
    ]
    for key in ("include_path_regex", "exclude_path_regex"):
        if key in one:
            cmd += ["--" + key.replace("_", "-"), one[key]]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    with open(report) as f:
        result = json.load(f)
    return {
        "name": one["name"],
        "exit_code": run.returncode,
        "generated": result["test_cases"]["generated"],
        "operations": result["operations"],
        "failures": result["failures"],
        "errors": result["errors"],
        # the human report names each failure with a curl line to reproduce it
        "output": run.stdout[-60000:] + run.stderr[-4000:],
    }


def main():
    spec = json.load(sys.stdin)
    here = os.path.dirname(os.path.abspath(__file__))
    cli = os.path.join(os.path.dirname(sys.executable), "schemathesis")
    print(json.dumps([run_pass(spec, here, cli, one) for one in spec["passes"]]))


if __name__ == "__main__":
    main()
