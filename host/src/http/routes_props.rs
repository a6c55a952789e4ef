//! The route table under generated paths (part of the `http_request` fuzz target's property,
//! `fuzz/src/http.rs`, on stable): a lookup never panics, and a path made from a template with
//! any (percent-encoded) values finds that template with exactly those values as its params.

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use proptest::prelude::*;

use super::{Lookup, Owner, RouteTable, Target};
use crate::runtime::bindings::{Access, Method};

const TEMPLATES: &[&str] = &[
    "/system/config",
    "/system/config/{key}",
    "/system/config/{key}/history",
    "/system/clients/{id}/rotate",
    "/system/features/{key}/evaluate",
    "/ofrep/v1/evaluate/flags/{key}",
    "/a/{b}/c/{d}",
];

fn table() -> RouteTable {
    let mut t = RouteTable::default();
    for (i, template) in TEMPLATES.iter().enumerate() {
        let target = Target {
            owner: Owner::Pack(i),
            owner_name: format!("p{i}"),
            access: Access::Read,
            summary: String::new(),
        };
        t.add(Method::Get, template, target)
            .expect("distinct templates");
    }
    t
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_path_is_looked_up_without_a_panic(path in "/[ -~]{0,60}", m in 0usize..3) {
        let method = [Some(Method::Get), Some(Method::Post), None][m];
        if let Lookup::Found { params, .. } = table().lookup(method, &path) {
            prop_assert!(params.iter().all(|(k, _)| !k.is_empty()));
        }
    }

    #[test]
    fn params_come_back_as_they_were_sent(
        t in 0..TEMPLATES.len(),
        values in prop::collection::vec(".{1,12}", 2),
    ) {
        let template = TEMPLATES[t];
        let mut given = Vec::new();
        let path: Vec<String> = template
            .split('/')
            .map(|s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => {
                    let v = &values[given.len()];
                    given.push((name.to_string(), v.clone()));
                    utf8_percent_encode(v, NON_ALPHANUMERIC).to_string()
                }
                None => s.to_string(),
            })
            .collect();
        match table().lookup(Some(Method::Get), &path.join("/")) {
            Lookup::Found { template: found, params, .. } => {
                prop_assert_eq!(found, template);
                prop_assert_eq!(params, given);
            }
            _ => prop_assert!(false, "{} not found", path.join("/")),
        }
    }
}
