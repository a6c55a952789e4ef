//! `GET /openapi.json`: an OpenAPI 3.1 document assembled from the live route table — every
//! enabled pack's routes with the request and response JSON Schemas of its manifest, and the
//! host's own routes. Errors are `application/problem+json` (RFC 9457); a route's access level
//! is its security requirement (`X-API-Key` or a Bearer token) and `x-valhalla-access`.

mod schemas;

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::dispatch::Served;
use super::routes::{HostRoute, Owner, Target};
use crate::runtime::bindings::{Access, Method, Route};
use schemas::Components;

/// The seeds' paths, kept as aliases of the current ones.
const DEPRECATED_PREFIX: &str = "/system-health/";

pub fn serve(app: &Served) -> Response {
    Json(document(app)).into_response()
}

/// The whole document.
pub fn document(app: &Served) -> Value {
    let mut components = Components::default();
    let mut paths: Map<String, Value> = Map::new();
    for (template, method, target) in app.routes.entries() {
        let route = match target.owner {
            Owner::Pack(i) => app
                .packs
                .get(i)
                .and_then(|p| manifest_route(p, method, template)),
            Owner::Host(_) => None,
        };
        let op = operation(template, method, target, route, &mut components);
        if let Some(item) = paths
            .entry(template.to_string())
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()
        {
            item.insert(method.as_str().to_ascii_lowercase(), op);
        }
    }
    let mut schemas = components.schemas;
    schemas.insert("Problem".into(), problem_schema());
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Valhalla",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The routes of every enabled pack and of the host. Errors are RFC 9457 \
                problem+json. Routes above `public` need an API key (`X-API-Key` header or \
                `Authorization: Bearer`) whose client has the role named in `x-valhalla-access`.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": error_responses(),
            "securitySchemes": {
                "ApiKey": { "type": "apiKey", "in": "header", "name": "X-API-Key" },
                "Bearer": { "type": "http", "scheme": "bearer" },
            },
        },
    })
}

/// The manifest's declaration of a route the table holds.
fn manifest_route<'a>(
    pack: &'a crate::runtime::LoadedPack,
    method: Method,
    template: &str,
) -> Option<&'a Route> {
    let trim = |p: &'a str| {
        if p.len() > 1 {
            p.trim_end_matches('/')
        } else {
            p
        }
    };
    pack.manifest
        .routes
        .iter()
        .find(|r| r.method == method && trim(&r.path) == template)
}

fn operation(
    template: &str,
    method: Method,
    target: &Target,
    route: Option<&Route>,
    components: &mut Components,
) -> Value {
    let pack = &target.owner_name;
    let mut op = Map::new();
    let summary = if target.summary.is_empty() {
        format!("{} {template}", method.as_str())
    } else {
        target.summary.clone()
    };
    op.insert("summary".into(), json!(summary));
    op.insert(
        "operationId".into(),
        json!(operation_id(pack, method, template)),
    );
    op.insert("tags".into(), json!([pack]));
    op.insert("x-valhalla-access".into(), json!(target.access.as_str()));
    let parameters = path_parameters(template);
    if !parameters.is_empty() {
        op.insert("parameters".into(), Value::Array(parameters));
    }
    let request = route.and_then(|r| r.request_schema.as_deref());
    if let Some(text) = request {
        let schema = components.add(pack, text);
        op.insert(
            "requestBody".into(),
            json!({ "required": true, "content": { "application/json": { "schema": schema } } }),
        );
    }
    let mut responses = Map::new();
    let success = match target.owner {
        Owner::Host(host) => host_success(host),
        Owner::Pack(_) => {
            let mut ok = json!({ "description": "Success" });
            if let Some(text) = route.and_then(|r| r.response_schema.as_deref()) {
                ok["content"] =
                    json!({ "application/json": { "schema": components.add(pack, text) } });
            }
            ok
        }
    };
    responses.insert("2XX".into(), success);
    for (status, name) in errors(target, method, request.is_some()) {
        responses.insert(
            status.into(),
            json!({ "$ref": format!("#/components/responses/{name}") }),
        );
    }
    op.insert("responses".into(), Value::Object(responses));
    if target.access == Access::Public {
        op.insert("security".into(), json!([]));
    } else {
        op.insert(
            "security".into(),
            json!([{ "ApiKey": [] }, { "Bearer": [] }]),
        );
        op.insert(
            "description".into(),
            json!(format!(
                "Needs an API key whose client has the `{}` role (or above).",
                target.access.as_str()
            )),
        );
    }
    if template.starts_with(DEPRECATED_PREFIX) {
        op.insert("deprecated".into(), json!(true));
    }
    Value::Object(op)
}

/// Unique per method and path.
fn operation_id(owner: &str, method: Method, template: &str) -> String {
    let path: String = template
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "{owner}.{}{}",
        method.as_str().to_ascii_lowercase(),
        path.trim_end_matches('_')
    )
}

/// `{name}` segments, as required path parameters.
fn path_parameters(template: &str) -> Vec<Value> {
    template
        .split('/')
        .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
        .collect()
}

fn host_success(host: HostRoute) -> Value {
    match host {
        HostRoute::Docs => json!({
            "description": "The interactive API documentation (Swagger UI)",
            "content": { "text/html": { "schema": { "type": "string" } } },
        }),
        HostRoute::Metrics => json!({
            "description": "Prometheus text exposition format",
            "content": { "text/plain": { "schema": { "type": "string" } } },
        }),
        HostRoute::OpenApi => json!({
            "description": "This OpenAPI 3.1 document",
            "content": { "application/json": { "schema": { "type": "object" } } },
        }),
        HostRoute::Reload => json!({
            "description": "The new configuration is served; which packs were loaded, reloaded, unloaded or kept",
            "content": { "application/json": { "schema": crate::reload::ReloadReport::schema() } },
        }),
        _ => json!({
            "description": "Success",
            "content": { "application/json": { "schema": { "type": "object" } } },
        }),
    }
}

/// The problems a route may answer: (status, component name).
fn errors(target: &Target, method: Method, has_body: bool) -> Vec<(&'static str, &'static str)> {
    let mut out = Vec::new();
    let pack = matches!(target.owner, Owner::Pack(_));
    if pack {
        out.push(("400", "BadRequest"));
    }
    // the guards see every route of a pack (and the reload): a presented key that is not
    // valid is a 401 and a blocked caller a 403 even where the route is public
    let guarded = pack || matches!(target.owner, Owner::Host(HostRoute::Reload));
    if target.access != Access::Public || guarded {
        out.extend([("401", "Unauthorized"), ("403", "Forbidden")]);
    }
    if pack || matches!(target.owner, Owner::Host(HostRoute::Docs)) {
        out.push(("404", "NotFound"));
    }
    if pack && method != Method::Get {
        // a write may meet the state it would change (a name taken, an immutable entry)
        out.push(("409", "Conflict"));
    }
    if has_body {
        out.extend([("413", "PayloadTooLarge"), ("415", "UnsupportedMediaType")]);
    }
    if pack {
        // any field a route reads (body, path, query) may fail its rules
        out.push(("422", "ValidationFailed"));
        out.push(("429", "TooManyRequests"));
    }
    if matches!(target.owner, Owner::Host(HostRoute::Reload)) {
        // guarded like a pack's route, so the rate-limit guard may answer it too
        out.extend([("422", "ConfigRejected"), ("429", "TooManyRequests")]);
    }
    out.push(("500", "InternalError"));
    out.push(("503", "Unavailable"));
    out
}

fn error_responses() -> Value {
    let problem = |description: &str| {
        json!({
            "description": description,
            "content": {
                "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } }
            },
        })
    };
    let mut limited = problem("Too many requests; `Retry-After` says when to come back");
    limited["headers"] = json!({
        "Retry-After": { "description": "seconds to wait", "schema": { "type": "integer" } }
    });
    json!({
        "BadRequest": problem("The request is malformed (e.g. a body that is not JSON)"),
        "Conflict": problem("The request conflicts with the resource's current state"),
        "ValidationFailed": problem("A field fails validation; `errors` names each one"),
        "Unauthorized": problem("No valid API key was presented (or one presented is not valid)"),
        "Forbidden": problem("The API key's client lacks the role this route needs, or the caller is blocked"),
        "NotFound": problem("No such resource"),
        "PayloadTooLarge": problem("The body exceeds the configured limit"),
        "UnsupportedMediaType": problem("The body is not of a type the route reads"),
        "TooManyRequests": limited,
        "InternalError": problem("The server failed to answer"),
        "Unavailable": problem("A dependency (database, pack) is unavailable"),
        "ConfigRejected": problem("The new configuration was rejected (the detail says why); the old one keeps serving"),
    })
}

/// RFC 9457 problem details, plus the request id every host problem carries.
fn problem_schema() -> Value {
    json!({
        "type": "object",
        "description": "RFC 9457 problem details",
        "required": ["type", "title", "status"],
        "properties": {
            "type": { "type": "string", "format": "uri-reference" },
            "title": { "type": "string" },
            "status": { "type": "integer", "minimum": 100, "maximum": 599 },
            "detail": { "type": "string" },
            "instance": { "type": "string", "format": "uri-reference" },
            "request_id": { "type": "string" },
            "errors": {
                "type": "array",
                "description": "every field that failed validation (422)",
                "items": {
                    "type": "object",
                    "required": ["field", "message"],
                    "properties": {
                        "field": { "type": "string" },
                        "message": { "type": "string" },
                    },
                },
            },
        },
        "additionalProperties": true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_parameters_and_ids() {
        let params = path_parameters("/system/config/{key}/history/{n}");
        let names: Vec<_> = params
            .iter()
            .map(|p| p["name"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(names, ["key", "n"]);
        assert_eq!(
            operation_id("system_config", Method::Delete, "/system/config/{key}"),
            "system_config.delete_system_config__key"
        );
    }
}
