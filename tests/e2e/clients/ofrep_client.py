"""Valhalla's OFREP endpoints through a real OpenFeature SDK and its OFREP provider.

Reads {"base_url", "api_key", "rollout_flag", "keys"} as JSON on stdin, evaluates with
openfeature-sdk + openfeature-provider-ofrep, and prints what it saw as JSON for the Rust
test (tests/e2e/ofrep.rs) to assert on. With "typed": [{"flag", "kind", "default",
"contexts": [{"targeting_key", "attributes"}]}], it also evaluates each flag through the
typed getter of its kind (boolean, string, integer, float, object) for every context and
answers "typed": the details per flag, per context (tests/e2e/feature_flags_engine.rs).
"""

import json
import sys

from openfeature import api
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext


def text(value):
    """An enum's value (Reason, ErrorCode), or the value itself."""
    return getattr(value, "value", value)


def details(d):
    return {
        "value": d.value,
        "variant": d.variant,
        "reason": text(d.reason),
        "error_code": text(d.error_code),
        "error_message": d.error_message,
        "metadata": dict(d.flag_metadata or {}),
    }


def typed(client, spec):
    """Each flag through its kind's typed getter, for each of its contexts."""
    getters = {
        "boolean": client.get_boolean_details,
        "string": client.get_string_details,
        "integer": client.get_integer_details,
        "float": client.get_float_details,
        "object": client.get_object_details,
    }
    answers = []
    for flag in spec:
        get = getters[flag["kind"]]
        seen = []
        for context in flag["contexts"]:
            ctx = EvaluationContext(
                targeting_key=context.get("targeting_key"),
                attributes=context.get("attributes", {}),
            )
            seen.append(details(get(flag["flag"], flag["default"], ctx)))
        answers.append(seen)
    return answers


def main():
    spec = json.load(sys.stdin)
    provider = OFREPProvider(
        spec["base_url"], headers_factory=lambda: {"X-API-Key": spec["api_key"]}
    )
    api.set_provider(provider)
    client = api.get_client()
    someone = EvaluationContext(targeting_key="someone")
    if "typed" in spec:
        print(json.dumps({"typed": typed(client, spec["typed"])}))
        return
    rollout = {}
    for key in spec["keys"]:
        d = client.get_boolean_details(
            spec["rollout_flag"], False, EvaluationContext(targeting_key=key)
        )
        if d.error_code is not None:
            rollout[key] = details(d)
        else:
            rollout[key] = d.value
    print(
        json.dumps(
            {
                "on": details(client.get_boolean_details("ofrep_on", False, someone)),
                "on_no_context": details(client.get_boolean_details("ofrep_on", False)),
                "off": details(client.get_boolean_details("ofrep_off", True, someone)),
                "rollout": rollout,
                "rollout_reason": text(
                    client.get_boolean_details(
                        spec["rollout_flag"], False, someone
                    ).reason
                ),
                "no_targeting_key": details(
                    client.get_boolean_details(spec["rollout_flag"], True)
                ),
                "unknown": details(client.get_boolean_details("no_such_flag", True, someone)),
            }
        )
    )


if __name__ == "__main__":
    main()
