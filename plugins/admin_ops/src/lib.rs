//! admin_ops (pack UF): one admin endpoint, `POST /admin/ops {action, params}`, whose actions
//! call other packs in-process. A disabled target pack gives `ok: false` with the reason;
//! every action is audited.

#![cfg_attr(not(test), no_std)]

use serde_json::{Value, json};
use valhalla_sdk::capability::Error as CallError;
use valhalla_sdk::prelude::*;

fn pack() -> Pack {
    Pack::new(
        "admin_ops",
        env!("CARGO_PKG_VERSION"),
        "Operator actions across packs",
    )
    .post("/admin/ops", Access::Admin, "Run an operator action", run)
}

valhalla_sdk::export_pack!(pack);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Op {
    action: String,
    #[serde(default)]
    params: serde_json::Map<String, Value>,
}

impl Validate for Op {}

/// An action: which pack it goes to and the call it makes.
struct Action {
    name: &'static str,
    pack: &'static str,
    call: fn(&serde_json::Map<String, Value>) -> Result<Call, Problem>,
}

struct Call {
    method: Method,
    path: String,
    query: Vec<(String, String)>,
    body: Option<Value>,
}

fn get(path: String) -> Result<Call, Problem> {
    Ok(Call {
        method: Method::Get,
        path,
        query: vec![],
        body: None,
    })
}

fn post(path: String, body: Option<Value>) -> Result<Call, Problem> {
    Ok(Call {
        method: Method::Post,
        path,
        query: vec![],
        body,
    })
}

/// A string parameter that is safe inside a path segment.
fn segment(params: &serde_json::Map<String, Value>, name: &str) -> Result<String, Problem> {
    let field = format!("params.{name}");
    let value = params
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| Problem::invalid_field(&field, "required (a string)"))?;
    let mut v = Validator::default();
    v.identifier(&field, value, 128);
    v.finish()?;
    Ok(value.to_string())
}

const ACTIONS: &[Action] = &[
    Action {
        name: "get_maintenance_state",
        pack: "maintenance",
        call: |_| get("/system/maintenance/state".into()),
    },
    Action {
        name: "set_maintenance_state",
        pack: "maintenance",
        call: |p| {
            let mode = segment(p, "mode")?;
            let mut call = post(format!("/system/maintenance/state/{mode}"), None)?;
            if let Some(reason) = p.get("reason").and_then(Value::as_str) {
                call.query.push(("reason".into(), reason.into()));
            }
            Ok(call)
        },
    },
    Action {
        name: "get_flag",
        pack: "feature_flags",
        call: |p| get(format!("/system/features/{}", segment(p, "key")?)),
    },
    Action {
        name: "set_flag",
        pack: "feature_flags",
        call: |p| post("/system/features".into(), Some(Value::Object(p.clone()))),
    },
    Action {
        name: "get_config",
        pack: "system_config",
        call: |p| get(format!("/system/config/{}", segment(p, "key")?)),
    },
    Action {
        name: "set_config",
        pack: "system_config",
        call: |p| post("/system/config".into(), Some(Value::Object(p.clone()))),
    },
    Action {
        name: "list_clients",
        pack: "api_clients",
        call: |_| get("/system/clients".into()),
    },
    Action {
        name: "deactivate_client",
        pack: "api_clients",
        call: |p| {
            post(
                format!("/system/clients/{}/deactivate", segment(p, "id")?),
                None,
            )
        },
    },
    Action {
        name: "list_rate_limit_rules",
        pack: "rate_limits",
        call: |_| get("/system/ratelimits/rules".into()),
    },
];

fn run(req: &Request) -> Result<Response, Problem> {
    let op: Op = req.json()?;
    let Some(action) = ACTIONS.iter().find(|a| a.name == op.action) else {
        let known: Vec<&str> = ACTIONS.iter().map(|a| a.name).collect();
        return Err(Problem::bad_request(format!(
            "unknown action `{}`; known actions: {}",
            op.action,
            known.join(", ")
        )));
    };
    let call = (action.call)(&op.params)?;
    let query: Vec<(&str, &str)> = call
        .query
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let (ok, data, error) = match packs::call(
        action.pack,
        call.method,
        &call.path,
        &query,
        call.body.as_ref(),
    ) {
        Ok(answer) if answer.ok() => (true, answer.json(), None),
        Ok(answer) => {
            let body = answer.json();
            let detail = body["detail"].as_str().map(str::to_string);
            (
                false,
                body.get("errors").cloned().unwrap_or(Value::Null),
                Some(detail.unwrap_or_else(|| format!("status {}", answer.status))),
            )
        }
        Err(CallError::Unavailable(m))
        | Err(CallError::AccessDenied(m))
        | Err(CallError::NotFound(m)) => (false, Value::Null, Some(m)),
        Err(e) => (
            false,
            Value::Null,
            Some(capability::message(&e).to_string()),
        ),
    };
    log::audit::<(), _>(
        &format!("admin.{}", action.name),
        &format!("{}{}", action.pack, call.path),
        None,
        Some(&json!({ "params": op.params, "ok": ok, "error": error })),
    );
    Response::ok(&json!({ "ok": ok, "action": action.name, "data": data, "error": error }))
}
