//! Grants: what `[packs.<name>.grants]` allows beyond the pack's own tables, parsed once at
//! startup into each capability's typed grant. A bad entry stops startup naming its key
//! (`packs.<name>.grants.outbound[1]`); nothing is dropped silently.

use std::collections::BTreeMap;

use super::outbound_grant::OutboundGrant;
use super::outbound_mail_grant::SmtpGrant;
use super::packs::PacksGrant;
use crate::config::{Config, ConfigError, PackConfig};

/// One pack's grants, typed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackGrants {
    pub outbound: OutboundGrant,
    pub packs: PacksGrant,
    /// `artefacts = true`: a directory of its own under `runtime.artefacts_dir`
    pub artefacts: bool,
    /// `smtp = [...]`: the SMTP relays `outbound-mail` may send through
    pub smtp: SmtpGrant,
}

impl PackGrants {
    /// The grants of pack `name` as `config` writes them.
    pub fn parse(config: &Config, name: &str, pack: &PackConfig) -> Result<Self, ConfigError> {
        let outbound = OutboundGrant::parse(&pack.grants.outbound).map_err(|e| {
            config.invalid(
                format!("packs.{name}.grants.outbound[{}]", e.index),
                e.error.to_string(),
            )
        })?;
        let packs = PacksGrant::parse(name, &pack.grants.packs)
            .map_err(|e| config.invalid(format!("packs.{name}.grants.packs"), e.to_string()))?;
        let smtp = SmtpGrant::parse(&pack.grants.smtp).map_err(|e| {
            config.invalid(
                format!("packs.{name}.grants.smtp[{}]", e.index),
                e.error.to_string(),
            )
        })?;
        Ok(Self {
            outbound,
            packs,
            artefacts: pack.grants.artefacts,
            smtp,
        })
    }

    /// The grants of every pack in `config` (enabled or not: a bad grant is a bad file).
    pub fn parse_all(config: &Config) -> Result<BTreeMap<String, Self>, ConfigError> {
        config
            .packs
            .iter()
            .map(|(name, pack)| Ok((name.clone(), Self::parse(config, name, pack)?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn grants(toml: &str) -> Result<BTreeMap<String, PackGrants>, String> {
        let config = Config::parse(toml, Path::new("/etc/v.toml")).map_err(|e| e.to_string())?;
        PackGrants::parse_all(&config).map_err(|e| e.to_string())
    }

    #[test]
    fn grants_parse_into_typed_values() {
        let g = grants(
            "[packs.a.grants]\noutbound = [\"http://127.0.0.1:*\"]\npacks = [\"b\"]\n[packs.b]\n",
        )
        .unwrap();
        assert!(g["a"].outbound.allows("http://127.0.0.1:8000/x"));
        assert!(g["a"].packs.allows("b"));
        assert!(!g["a"].artefacts && !g["b"].artefacts);
        assert_eq!(g["b"], PackGrants::default(), "deny by default");
        assert!(!g["b"].outbound.allows("http://127.0.0.1:8000/x"));
    }

    #[test]
    fn artefacts_are_granted_by_name() {
        let g = grants("[packs.a.grants]\nartefacts = true\n[packs.b]\n").unwrap();
        assert!(g["a"].artefacts);
        assert!(!g["b"].artefacts, "deny by default");
        assert!(grants("[packs.a.grants]\nartefacts = \"yes\"\n").is_err());
    }

    #[test]
    fn a_bad_pattern_names_the_file_and_key() {
        let err =
            grants("[packs.a.grants]\noutbound = [\"https://x\", \"ftp://x\"]\n").unwrap_err();
        assert!(err.contains("/etc/v.toml"), "{err}");
        assert!(err.contains("packs.a.grants.outbound[1]"), "{err}");
        assert!(err.contains("ftp"), "{err}");
    }

    #[test]
    fn a_bad_pack_name_names_the_key() {
        let err = grants("[packs.a.grants]\npacks = [\"a\"]\n").unwrap_err();
        assert!(
            err.contains("packs.a.grants.packs") && err.contains("`a`"),
            "{err}"
        );
        let err = grants("[packs.a]\nenabled = false\n[packs.a.grants]\npacks = [\"Bad Name\"]\n")
            .unwrap_err();
        assert!(err.contains("packs.a.grants.packs"), "{err}");
    }
}
