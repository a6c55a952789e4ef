//! admin_ops (pack UF): one admin endpoint, `POST /admin/ops {action, params}`, whose actions
//! call other packs in-process. A disabled target pack gives `ok: false` with the reason;
//! every action is audited.

#![cfg_attr(not(test), no_std)]

use serde_json::{Map, Value, json};
use valhalla_sdk::Method::{Get, Post};
use valhalla_sdk::capability::Error as CallError;
use valhalla_sdk::prelude::*;

fn pack() -> Pack {
    Pack::new("admin_ops", env!("CARGO_PKG_VERSION"), "Operator actions across packs").post(
        "/admin/ops",
        Access::Admin,
        "Run an operator action",
        run,
    )
}

valhalla_sdk::export_pack!(pack);

/// `POST /admin/ops`: an action by name and its parameters.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Op {
    #[schemars(schema_with = "action_names")]
    action: String,
    #[serde(default)]
    params: Map<String, Value>,
}

/// The `action` of the body schema: one of [`ACTIONS`] (an unknown name is a 400).
fn action_names(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let names: Vec<&str> = ACTIONS.iter().map(|a| a.0).collect();
    schemars::json_schema!({ "type": "string", "enum": names })
}

/// What the target pack answered: its body when it succeeded, its field errors and detail
/// when it did not.
#[derive(Serialize, JsonSchema)]
struct Outcome {
    ok: bool,
    action: &'static str,
    data: Value,
    error: Option<String>,
}

/// What an action passes on besides the `{name}` segments of its path.
#[derive(Clone, Copy)]
enum Forward {
    PathOnly,
    /// the params, as the JSON body
    Body,
    /// this param, when it is a string, as a query parameter
    AsQuery(&'static str),
    /// the params other than the path's `{name}` segments, as the JSON body
    Rest,
}
use Forward::{AsQuery, Body, PathOnly, Rest};

/// An action: name, target pack, method, path and what else it passes on. The path's
/// `{name}` segments are filled from string params, each checked as an identifier.
struct Action(&'static str, &'static str, Method, &'static str, Forward);

const ACTIONS: &[Action] = &[
    Action("get_maintenance_state", "maintenance", Get, "/system/maintenance/state", PathOnly),
    Action(
        "set_maintenance_state",
        "maintenance",
        Post,
        "/system/maintenance/state/{mode}",
        AsQuery("reason"),
    ),
    Action("get_flag", "feature_flags", Get, "/system/features/{key}", PathOnly),
    Action("set_flag", "feature_flags", Post, "/system/features", Body),
    // feature_flags' own evaluation: {key, subject, context} answers as the native route
    Action("evaluate_flag", "feature_flags", Post, "/system/features/{key}/evaluate", Rest),
    Action("get_config", "system_config", Get, "/system/config/{key}", PathOnly),
    Action("set_config", "system_config", Post, "/system/config", Body),
    Action("list_clients", "api_clients", Get, "/system/clients", PathOnly),
    Action("deactivate_client", "api_clients", Post, "/system/clients/{id}/deactivate", PathOnly),
    Action("list_rate_limit_rules", "rate_limits", Get, "/system/ratelimits/rules", PathOnly),
    Action("security_snapshot", "security_dashboard", Get, "/system/security/dashboard", PathOnly),
];

/// The action's path with its `{name}` segments filled in.
fn fill(template: &str, params: &Map<String, Value>) -> Result<String, Problem> {
    let mut path = String::new();
    for part in template.split('/').skip(1) {
        path.push('/');
        match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            Some(name) => path.push_str(segment(params, name)?),
            None => path.push_str(part),
        }
    }
    Ok(path)
}

/// A string parameter that is safe inside a path segment.
fn segment<'a>(params: &'a Map<String, Value>, name: &str) -> Result<&'a str, Problem> {
    let field = format!("params.{name}");
    let value = params
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| Problem::invalid_field(&field, "required (a string)"))?;
    Validator::run(|v| v.identifier(&field, value, 128))?;
    Ok(value)
}

fn run(Json(op): Json<Op>) -> Result<Json<Outcome>, Problem> {
    let Some(&Action(name, pack, method, template, forward)) =
        ACTIONS.iter().find(|a| a.0 == op.action)
    else {
        let known: Vec<&str> = ACTIONS.iter().map(|a| a.0).collect();
        return Err(Problem::bad_request(format!(
            "unknown action `{}`; known actions: {}",
            op.action,
            known.join(", ")
        )));
    };
    let path = fill(template, &op.params)?;
    let rest: Map<String, Value>;
    let (query, body) = match forward {
        PathOnly => (None, None),
        Body => (None, Some(&op.params)),
        Rest => {
            let in_path = |name: &str| template.contains(&format!("{{{name}}}"));
            rest = op
                .params
                .iter()
                .filter(|(k, _)| !in_path(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            (None, Some(&rest))
        }
        AsQuery(param) => (op.params.get(param).and_then(Value::as_str).map(|v| (param, v)), None),
    };
    let (ok, data, error) = match packs::call(pack, method, &path, query.as_slice(), body) {
        Ok(answer) if answer.ok() => (true, answer.json(), None),
        Ok(answer) => {
            let body = answer.json();
            let detail = body["detail"]
                .as_str()
                .map_or_else(|| format!("status {}", answer.status), str::to_string);
            (false, body.get("errors").cloned().unwrap_or(Value::Null), Some(detail))
        }
        Err(CallError::Unavailable(m) | CallError::AccessDenied(m) | CallError::NotFound(m)) => {
            (false, Value::Null, Some(m))
        }
        Err(e) => (false, Value::Null, Some(capability::message(&e).to_string())),
    };
    let audited = json!({ "params": op.params, "ok": ok, "error": error });
    log::audit_created(&format!("admin.{name}"), &format!("{pack}{path}"), &audited);
    Ok(Json(Outcome { ok, action: name, data, error }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn paths_are_filled_from_checked_string_params() {
        let p = params(serde_json::json!({"id": "c-1", "n": 3, "bad": "a/b"}));
        assert_eq!(
            fill("/system/clients/{id}/deactivate", &p).unwrap(),
            "/system/clients/c-1/deactivate"
        );
        assert_eq!(fill("/system/clients", &p).unwrap(), "/system/clients");
        for (template, field) in
            [("/x/{key}", "params.key"), ("/x/{n}", "params.n"), ("/x/{bad}", "params.bad")]
        {
            let problem = fill(template, &p).unwrap_err();
            assert_eq!((problem.status, problem.errors[0].field.as_str()), (422, field));
        }
    }

    #[test]
    fn action_names_are_unique() {
        for (i, a) in ACTIONS.iter().enumerate() {
            assert!(ACTIONS[i + 1..].iter().all(|b| b.0 != a.0), "{}", a.0);
        }
    }
}
