//! `VALHALLA_*` environment variables that override `config.toml`.

use super::{Config, ConfigError};

fn parse<T: std::str::FromStr>(var: &str, value: &str) -> Result<T, ConfigError> {
    value.parse().map_err(|_| ConfigError::Env {
        var: var.to_string(),
        problem: format!("`{value}` is not a valid value"),
    })
}

/// Apply the overrides found in `vars`:
/// `VALHALLA_BIND`, `VALHALLA_DATABASE_URL`, `VALHALLA_BODY_LIMIT_BYTES`, `VALHALLA_DEADLINE_MS`,
/// `VALHALLA_MEMORY_LIMIT_MIB`, `VALHALLA_MAX_INSTANCES`, `VALHALLA_PACKS_DIR`,
/// `VALHALLA_MIGRATIONS_DIR`, `VALHALLA_CACHE_DIR`, `VALHALLA_ARTEFACTS_DIR`, `VALHALLA_ADMIN_KEY`,
/// `VALHALLA_AUTH_ENABLED`, `VALHALLA_TRUSTED_PROXIES` (comma-separated), `VALHALLA_OTLP_ENDPOINT`,
/// `VALHALLA_SERVICE_NAME`, `VALHALLA_SAMPLE_RATIO` (`[telemetry]`), and `VALHALLA_PACK_<NAME>_ENABLED` for a pack in the file.
pub fn apply_env_overrides(
    config: &mut Config,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    for (var, value) in vars {
        let Some(name) = var.strip_prefix("VALHALLA_") else {
            continue;
        };
        match name {
            "BIND" => config.server.bind = value,
            "DATABASE_URL" => config.database.url = value,
            "BODY_LIMIT_BYTES" => config.server.body_limit_bytes = parse(&var, &value)?,
            "DEADLINE_MS" => config.runtime.deadline_ms = parse(&var, &value)?,
            "MEMORY_LIMIT_MIB" => config.runtime.memory_limit_mib = parse(&var, &value)?,
            "MAX_INSTANCES" => config.runtime.max_instances = parse(&var, &value)?,
            "PACKS_DIR" => config.runtime.packs_dir = value.into(),
            "MIGRATIONS_DIR" => config.runtime.migrations_dir = value.into(),
            "CACHE_DIR" => config.runtime.cache_dir = value.into(),
            "ARTEFACTS_DIR" => config.runtime.artefacts_dir = value.into(),
            "ADMIN_KEY" => config.auth.admin_key = Some(super::Secret::new(value)),
            "AUTH_ENABLED" => config.auth.enabled = parse(&var, &value)?,
            "OTLP_ENDPOINT" => {
                config.telemetry.otlp_endpoint = Some(value).filter(|v| !v.is_empty())
            }
            "SERVICE_NAME" => config.telemetry.service_name = value,
            "SAMPLE_RATIO" => config.telemetry.sample_ratio = parse(&var, &value)?,
            "TRUSTED_PROXIES" => {
                config.server.trusted_proxies = value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            }
            _ => {
                if let Some(pack) = name
                    .strip_prefix("PACK_")
                    .and_then(|rest| rest.strip_suffix("_ENABLED"))
                {
                    let key = pack.to_ascii_lowercase();
                    let enabled: bool = parse(&var, &value)?;
                    let entry = config.packs.get_mut(&key).ok_or_else(|| ConfigError::Env {
                        var: var.clone(),
                        problem: format!("no pack `{key}` in {}", config.source.display()),
                    })?;
                    entry.enabled = enabled;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn overrides_apply() {
        let mut c = Config::parse(
            "[packs.system_config]\nenabled = true\n",
            Path::new("c.toml"),
        )
        .unwrap();
        apply_env_overrides(
            &mut c,
            vars(&[
                ("VALHALLA_BIND", "0.0.0.0:9000"),
                ("VALHALLA_DATABASE_URL", "postgres://x/y"),
                ("VALHALLA_PACK_SYSTEM_CONFIG_ENABLED", "false"),
                ("PATH", "/bin"),
            ]),
        )
        .unwrap();
        assert_eq!(c.server.bind, "0.0.0.0:9000");
        assert_eq!(c.database.url, "postgres://x/y");
        assert!(!c.packs["system_config"].enabled);
    }

    #[test]
    fn bad_value_names_the_variable() {
        let mut c = Config::parse("", Path::new("c.toml")).unwrap();
        let err =
            apply_env_overrides(&mut c, vars(&[("VALHALLA_DEADLINE_MS", "soon")])).unwrap_err();
        assert!(err.to_string().contains("VALHALLA_DEADLINE_MS"));
    }

    #[test]
    fn unknown_pack_is_an_error() {
        let mut c = Config::parse("", Path::new("c.toml")).unwrap();
        let err = apply_env_overrides(&mut c, vars(&[("VALHALLA_PACK_NOPE_ENABLED", "true")]))
            .unwrap_err();
        assert!(err.to_string().contains("no pack `nope`"));
    }
}
