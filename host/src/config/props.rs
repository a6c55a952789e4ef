//! `config.toml` under generated text (the property of the `config_parse` fuzz target,
//! `fuzz/src/config.rs`, on stable): parse, `VALHALLA_*` overrides, validation and the packs'
//! grants answer a config or an error — never a panic —, a config that passes promises a bind
//! address and an engine, and no message the host writes (nor `Debug`) repeats the admin key.

use std::path::Path;

use proptest::prelude::*;

use super::{Config, apply_env_overrides};
use crate::capabilities::PackGrants;

const KEY: &str = "prop-admin-key-5d1c3b9e77a04f62";

const TABLES: &[&str] = &[
    "[server]",
    "[database]",
    "[runtime]",
    "[auth]",
    "[telemetry]",
    "[packs.system_config]",
    "[packs.notifications]",
    "[packs.notifications.grants]",
    "[packs.exports.grants]",
    "[packs.Bad-Name]",
];
const KEYS: &[&str] = &[
    "bind",
    "body_limit_bytes",
    "shutdown_grace_seconds",
    "guard_order",
    "trusted_proxies",
    "url",
    "max_connections",
    "pack_roles",
    "deadline_ms",
    "memory_limit_mib",
    "max_instances",
    "packs_dir",
    "enabled",
    "admin_key",
    "component",
    "outbound",
    "packs",
    "artefacts",
    "smtp",
    "otlp_endpoint",
    "unknown",
];
const VALUES: &[&str] = &[
    "\"127.0.0.1:0\"",
    "\"0.0.0.0:80\"",
    "\"nope\"",
    "0",
    "1",
    "-1",
    "99999999999",
    "true",
    "\"sqlite://x.db\"",
    "\"postgres://u:p@h/db\"",
    "\"mysql://x\"",
    "[]",
    "[\"api_clients\"]",
    "[\"http://127.0.0.1:*\"]",
    "[\"10.0.0.0/8\", \"nope\"]",
    "{ url = \"smtp://h:25\", password_env = \"X\" }",
    "[{ url = \"smtp://h\" }]",
    "1.5",
];
const ENV: &[&str] = &[
    "VALHALLA_ADMIN_KEY",
    "VALHALLA_BIND",
    "VALHALLA_DATABASE_URL",
    "VALHALLA_DEADLINE_MS",
    "VALHALLA_MAX_INSTANCES",
    "VALHALLA_AUTH_ENABLED",
    "VALHALLA_NOPE",
];

fn line() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(TABLES).prop_map(String::from),
        (prop::sample::select(KEYS), prop::sample::select(VALUES))
            .prop_map(|(k, v)| format!("{k} = {v}")),
        // the key only where it belongs: the host's messages about other keys may quote them
        Just(format!("admin_key = \"{KEY}\"")),
        ".{0,40}",
    ]
}

fn env() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec(
        prop_oneof![
            (prop::sample::select(ENV), ".{0,20}").prop_map(|(k, v)| (k.to_string(), v)),
            Just(("VALHALLA_ADMIN_KEY".to_string(), KEY.to_string())),
        ],
        0..3,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn reading_a_config_is_total_and_keeps_the_key(
        lines in prop::collection::vec(line(), 0..16),
        env in env(),
    ) {
        let text = lines.join("\n");
        let path = Path::new("/nonexistent/config.toml");
        // a TOML syntax error quotes its line (secrets included: reported), so only the
        // host's own messages are held to the key
        let Ok(mut config) = Config::parse(&text, path) else { return Ok(()) };
        let own = apply_env_overrides(&mut config, env)
            .err()
            .or_else(|| config.validate().err())
            .or_else(|| PackGrants::parse_all(&config).err());
        match own {
            Some(e) => {
                let message = e.to_string();
                prop_assert!(!message.is_empty());
                prop_assert!(!message.contains(KEY), "{}", message);
            }
            None => {
                prop_assert!(config.bind_addr().is_ok());
                prop_assert!(config.engine().is_ok());
                let shown = format!("{config:?}");
                prop_assert!(!shown.contains(KEY));
            }
        }
    }
}
