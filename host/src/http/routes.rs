//! The route table: path templates from every pack's manifest (and the host's own routes),
//! matched with `matchit`; two owners of one route stop startup naming both.

use std::collections::HashMap;

use crate::runtime::bindings::{Access, Method};

/// Who serves a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// index into the loaded packs
    Pack(usize),
    Host(HostRoute),
}

/// The host's own endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostRoute {
    Live,
    Ready,
    /// `GET /openapi.json`
    OpenApi,
    /// `GET /docs` and its assets
    Docs,
    /// `GET /metrics` (Prometheus text)
    Metrics,
    /// `GET /system/health/metrics` (JSON summary)
    HealthMetrics,
    /// `POST /admin/reload`: guarded and access-checked like a pack's route
    Reload,
}

#[derive(Debug, Clone)]
pub struct Target {
    pub owner: Owner,
    pub owner_name: String,
    pub access: Access,
    pub summary: String,
}

struct PathRoutes {
    template: String,
    methods: Vec<(Method, Target)>,
}

/// A route declared twice, or two templates that cannot be told apart.
#[derive(Debug, thiserror::Error)]
#[error("route conflict: {method} {path} is claimed by `{first}` and by `{second}`")]
pub struct RouteConflict {
    pub method: String,
    pub path: String,
    pub first: String,
    pub second: String,
}

/// What a lookup found.
pub enum Lookup<'a> {
    Found {
        template: &'a str,
        target: &'a Target,
        params: Vec<(String, String)>,
    },
    /// the path exists, not with this method; the `Allow` header value
    MethodNotAllowed(String),
    NotFound,
}

#[derive(Default)]
pub struct RouteTable {
    matcher: matchit::Router<usize>,
    paths: Vec<PathRoutes>,
    by_template: HashMap<String, usize>,
    /// the pack serving what no route matches (decoys), if one declared it
    fallback: Option<Target>,
}

/// The template requests to the fallback carry.
pub const FALLBACK_TEMPLATE: &str = "*";

/// `/a/{b}/` → `/a/{b}`; rejects what matchit would misread.
fn normalise(template: &str) -> Option<String> {
    if !template.starts_with('/') || template.contains("//") || template.contains('*') {
        return None;
    }
    let t = if template.len() > 1 {
        template.trim_end_matches('/')
    } else {
        template
    };
    let segments_ok =
        t.split('/').skip(1).all(
            |s| match s.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
                Some(name) => {
                    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                }
                None => !s.contains(['{', '}']),
            },
        );
    segments_ok.then(|| t.to_string())
}

impl RouteTable {
    /// Add a route; a second owner of the same method and path is a conflict.
    pub fn add(
        &mut self,
        method: Method,
        template: &str,
        target: Target,
    ) -> Result<(), RouteConflict> {
        let conflict = |first: String, path: String| RouteConflict {
            method: method.as_str().to_string(),
            path,
            first,
            second: target.owner_name.clone(),
        };
        let Some(path) = normalise(template) else {
            return Err(RouteConflict {
                method: method.as_str().into(),
                path: template.into(),
                first:
                    "the route syntax (paths start with `/`, params are whole segments like `{id}`)"
                        .into(),
                second: target.owner_name.clone(),
            });
        };
        let index = match self.by_template.get(&path) {
            Some(&i) => i,
            None => {
                let i = self.paths.len();
                if let Err(e) = self.matcher.insert(path.clone(), i) {
                    let other = match &e {
                        matchit::InsertError::Conflict { with } => self
                            .by_template
                            .get(with)
                            .and_then(|&j| self.paths[j].methods.first())
                            .map(|(_, t)| format!("{} (as {with})", t.owner_name))
                            .unwrap_or_else(|| with.clone()),
                        other => other.to_string(),
                    };
                    return Err(conflict(other, path));
                }
                self.paths.push(PathRoutes {
                    template: path.clone(),
                    methods: Vec::new(),
                });
                self.by_template.insert(path.clone(), i);
                i
            }
        };
        let routes = &mut self.paths[index];
        if let Some((_, existing)) = routes.methods.iter().find(|(m, _)| *m == method) {
            return Err(conflict(existing.owner_name.clone(), path));
        }
        routes.methods.push((method, target));
        Ok(())
    }

    /// Let `target` serve every request no route matches; a second one is a conflict.
    pub fn set_fallback(&mut self, target: Target) -> Result<(), RouteConflict> {
        if let Some(first) = &self.fallback {
            return Err(RouteConflict {
                method: "*".into(),
                path: "the fallback (paths no route serves)".into(),
                first: first.owner_name.clone(),
                second: target.owner_name,
            });
        }
        self.fallback = Some(target);
        Ok(())
    }

    /// Find the route for `method` on `path` (trailing slash already removed).
    pub fn lookup(&self, method: Option<Method>, path: &str) -> Lookup<'_> {
        let Ok(matched) = self.matcher.at(path) else {
            return self.fallback(method);
        };
        let routes = &self.paths[*matched.value];
        let found = method.and_then(|m| routes.methods.iter().find(|(rm, _)| *rm == m));
        match found {
            Some((_, target)) => Lookup::Found {
                template: &routes.template,
                target,
                params: matched
                    .params
                    .iter()
                    .map(|(k, v)| (k.to_string(), percent_decode(v)))
                    .collect(),
            },
            None => Lookup::MethodNotAllowed(self.allow(routes)),
        }
    }

    /// A path no route serves: the fallback's, for the methods a route can have, or nothing.
    fn fallback(&self, method: Option<Method>) -> Lookup<'_> {
        let routable = matches!(
            method,
            Some(Method::Get | Method::Post | Method::Put | Method::Patch | Method::Delete)
        );
        match &self.fallback {
            Some(target) if routable => Lookup::Found {
                template: FALLBACK_TEMPLATE,
                target,
                params: Vec::new(),
            },
            _ => Lookup::NotFound,
        }
    }

    fn allow(&self, routes: &PathRoutes) -> String {
        let mut names: Vec<&str> = routes.methods.iter().map(|(m, _)| m.as_str()).collect();
        if routes.methods.iter().any(|(m, _)| *m == Method::Get) {
            names.push("HEAD");
        }
        names.push("OPTIONS");
        names.join(", ")
    }

    /// Every route, sorted by path then method.
    pub fn entries(&self) -> Vec<(&str, Method, &Target)> {
        let mut all: Vec<_> = self
            .paths
            .iter()
            .flat_map(|p| {
                p.methods
                    .iter()
                    .map(move |(m, t)| (p.template.as_str(), *m, t))
            })
            .collect();
        all.sort_by(|a, b| a.0.cmp(b.0).then(a.1.as_str().cmp(b.1.as_str())));
        all
    }
}

pub fn percent_decode(raw: &str) -> String {
    percent_encoding::percent_decode_str(raw)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(owner: &str) -> Target {
        Target {
            owner: Owner::Pack(0),
            owner_name: owner.into(),
            access: Access::Public,
            summary: String::new(),
        }
    }

    #[test]
    fn finds_routes_and_params() {
        let mut t = RouteTable::default();
        t.add(Method::Get, "/system/config", target("a")).unwrap();
        t.add(Method::Get, "/system/config/{key}", target("a"))
            .unwrap();
        t.add(Method::Delete, "/system/config/{key}/", target("a"))
            .unwrap();
        match t.lookup(Some(Method::Get), "/system/config/a%20b") {
            Lookup::Found {
                template, params, ..
            } => {
                assert_eq!(template, "/system/config/{key}");
                assert_eq!(params, [("key".to_string(), "a b".to_string())]);
            }
            _ => panic!("not found"),
        }
        match t.lookup(Some(Method::Post), "/system/config/x") {
            Lookup::MethodNotAllowed(allow) => assert_eq!(allow, "GET, DELETE, HEAD, OPTIONS"),
            _ => panic!("expected 405"),
        }
        assert!(matches!(
            t.lookup(Some(Method::Get), "/nope"),
            Lookup::NotFound
        ));
    }

    #[test]
    fn the_fallback_serves_only_what_no_route_matches() {
        let mut t = RouteTable::default();
        t.add(Method::Get, "/system/config", target("a")).unwrap();
        t.set_fallback(target("decoys")).unwrap();
        let owner = |l: Lookup<'_>| match l {
            Lookup::Found {
                template, target, ..
            } => format!("{template} {}", target.owner_name),
            Lookup::MethodNotAllowed(allow) => format!("405 {allow}"),
            Lookup::NotFound => "404".into(),
        };
        assert_eq!(
            owner(t.lookup(Some(Method::Get), "/system/config")),
            "/system/config a"
        );
        assert_eq!(
            owner(t.lookup(Some(Method::Delete), "/wp-login.php")),
            "* decoys"
        );
        // a path a route serves keeps its 405; OPTIONS is not the fallback's
        assert!(owner(t.lookup(Some(Method::Post), "/system/config")).starts_with("405"));
        assert_eq!(owner(t.lookup(None, "/wp-login.php")), "404");
        let e = t.set_fallback(target("other")).unwrap_err().to_string();
        assert!(e.contains("decoys") && e.contains("other"), "{e}");
    }

    #[test]
    fn same_route_twice_names_both_owners() {
        let mut t = RouteTable::default();
        t.add(Method::Get, "/x/{id}", target("first")).unwrap();
        let e = t
            .add(Method::Get, "/x/{id}/", target("second"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("first") && e.contains("second"), "{e}");
        let e = t
            .add(Method::Post, "/x/{other}", target("third"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("first") && e.contains("third"), "{e}");
    }

    #[test]
    fn bad_templates_are_refused() {
        let mut t = RouteTable::default();
        assert!(t.add(Method::Get, "no-slash", target("a")).is_err());
        assert!(t.add(Method::Get, "/a/{b}c", target("a")).is_err());
        assert!(t.add(Method::Get, "/a/*rest", target("a")).is_err());
    }
}

#[cfg(test)]
#[path = "routes_props.rs"]
mod props;
