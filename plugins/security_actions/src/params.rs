//! What each action type takes: its `params` checked field by field (a 422 naming
//! `params.x`) and stored in canonical form (an IP canonical, a CIDR as its network, a client
//! as its id), so the action shows exactly what will run.

use core::net::IpAddr;

use serde_json::{Map, Value};
use valhalla_sdk::prelude::*;
use valhalla_sdk::request::parse_json;

/// The action types, as `action_type` names them.
pub(crate) const ACTION_TYPES: [&str; 5] =
    ["block_ip", "unblock_ip", "deactivate_client", "activate_client", "set_maintenance"];
const SEVERITIES: [&str; 4] = ["low", "medium", "high", "critical"];
const MODES: [&str; 3] = ["normal", "read_only", "maintenance"];
/// 366 days: the longest block security_policy takes as `duration_seconds`.
const MAX_DURATION_SECONDS: i64 = 31_622_400;
/// Principal ids of API clients start with this (a client may be named either way).
const CLIENT_PREFIX: &str = "client:";

/// `block_ip`: a blocklist rule for an address or a network.
#[derive(Serialize, Deserialize, Validate)]
#[serde(deny_unknown_fields)]
#[validate(with = one_expiry)]
pub(crate) struct BlockIp {
    /// an IP address or a CIDR network
    #[validate(custom(function = ip_or_cidr))]
    pub ip: String,
    /// `4h`, `30m`, `1h30m`, `90s`, `2d`, `1w`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(custom(function = duration))]
    pub duration: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(range(min = 1, max = MAX_DURATION_SECONDS))]
    pub duration_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(rfc3339)]
    pub expires_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(one_of = SEVERITIES)]
    pub severity: Option<String>,
}

/// A block ends one way at most.
fn one_expiry(b: &BlockIp, v: &mut Validator) {
    let given = [b.duration.is_some(), b.duration_seconds.is_some(), b.expires_at.is_some()];
    if given.iter().filter(|g| **g).count() > 1 {
        v.error("duration", "give at most one of duration, duration_seconds and expires_at");
    }
}

/// `unblock_ip`: remove the active rules of an address or a network.
#[derive(Serialize, Deserialize, Validate)]
#[serde(deny_unknown_fields)]
pub(crate) struct UnblockIp {
    #[validate(custom(function = ip_or_cidr))]
    pub ip: String,
}

/// `deactivate_client` / `activate_client`: an API client by id.
#[derive(Serialize, Deserialize, Validate)]
#[serde(deny_unknown_fields)]
pub(crate) struct Client {
    /// the client's id (or its principal id, `client:<id>`)
    #[validate(identifier(max = 128), custom(function = client_id))]
    pub client_id: String,
}

/// `set_maintenance`: switch the service mode.
#[derive(Serialize, Deserialize, Validate)]
#[serde(deny_unknown_fields)]
pub(crate) struct SetMaintenance {
    #[validate(one_of = MODES)]
    pub mode: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(length(max = 1024))]
    pub reason: Option<String>,
}

/// An action's parameters, by its type, checked and canonical.
pub(crate) enum Params {
    BlockIp(BlockIp),
    UnblockIp(UnblockIp),
    Client { activate: bool, params: Client },
    SetMaintenance(SetMaintenance),
}

impl Params {
    /// The `params` of an action of `action_type` (one of [`ACTION_TYPES`]), or the field
    /// errors, each named `params.x`.
    pub fn parse(action_type: &str, params: &Map<String, Value>) -> Result<Self, Vec<FieldError>> {
        match action_type {
            "block_ip" => typed(params).map(|mut b: BlockIp| {
                b.ip = canonical(&b.ip);
                Self::BlockIp(b)
            }),
            "unblock_ip" => typed(params).map(|mut u: UnblockIp| {
                u.ip = canonical(&u.ip);
                Self::UnblockIp(u)
            }),
            "deactivate_client" | "activate_client" => typed(params).map(|mut c: Client| {
                c.client_id = c.client_id.trim_start_matches(CLIENT_PREFIX).into();
                Self::Client { activate: action_type == "activate_client", params: c }
            }),
            "set_maintenance" => typed(params).map(Self::SetMaintenance),
            other => Err(vec![FieldError::new(
                "action_type",
                format!("`{other}` is not an action type"),
            )]),
        }
    }

    /// The canonical params as stored and answered.
    pub fn to_json(&self) -> Value {
        let value = match self {
            Self::BlockIp(b) => serde_json::to_value(b),
            Self::UnblockIp(u) => serde_json::to_value(u),
            Self::Client { params, .. } => serde_json::to_value(params),
            Self::SetMaintenance(m) => serde_json::to_value(m),
        };
        value.unwrap_or(Value::Null)
    }
}

/// `params` read as `T` and checked by its rules; errors named `params.x`.
fn typed<T: serde::de::DeserializeOwned + Validate>(
    params: &Map<String, Value>,
) -> Result<T, Vec<FieldError>> {
    let prefixed = |p: Problem| -> Vec<FieldError> {
        let errors = p.errors.into_iter().map(|e| {
            let field = match e.field.as_str() {
                "body" | "" => "params".to_string(),
                f => format!("params.{f}"),
            };
            FieldError::new(field, e.message)
        });
        errors.collect()
    };
    let bytes = serde_json::to_vec(params)
        .map_err(|_| vec![FieldError::new("params", "must be a JSON object")])?;
    let value: T = parse_json(&bytes).map_err(prefixed)?;
    Validator::of(&value).map_err(prefixed)?;
    Ok(value)
}

/// An IP address or a CIDR network (`10.0.0.0/8`, `2001:db8::/32`).
fn ip_or_cidr(text: &str) -> Result<(), &'static str> {
    match text.split_once('/') {
        None => text.parse::<IpAddr>().map(|_| ()).map_err(|_| "must be an IP address or a CIDR"),
        Some((addr, bits)) => {
            let addr: IpAddr = addr.parse().map_err(|_| "must be an IP address or a CIDR")?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            match bits.parse::<u8>() {
                Ok(n) if n <= max && bits.bytes().all(|b| b.is_ascii_digit()) => Ok(()),
                _ => Err("the prefix length of a CIDR must be 0 to 32 (IPv4) or 128 (IPv6)"),
            }
        }
    }
}

/// The canonical form of a valid [`ip_or_cidr`]: an IP in canonical text form (IPv4-mapped
/// IPv6 as IPv4), a CIDR as its network address and prefix.
pub(crate) fn canonical(text: &str) -> String {
    match text.split_once('/') {
        None => {
            text.parse::<IpAddr>().map_or_else(|_| text.into(), |ip| ip.to_canonical().to_string())
        }
        Some((addr, bits)) => match (addr.parse::<IpAddr>(), bits.parse::<u32>()) {
            (Ok(IpAddr::V4(a)), Ok(n)) if n <= 32 => {
                let mask = u32::MAX.checked_shl(32 - n).unwrap_or(0);
                format!("{}/{n}", core::net::Ipv4Addr::from(u32::from(a) & mask))
            }
            (Ok(IpAddr::V6(a)), Ok(n)) if n <= 128 => {
                let mask = u128::MAX.checked_shl(128 - n).unwrap_or(0);
                format!("{}/{n}", core::net::Ipv6Addr::from(u128::from(a) & mask))
            }
            _ => text.into(),
        },
    }
}

/// Is this IP text a network (`cidr` rule) rather than an address (`ip` rule)?
pub(crate) fn rule_type(ip: &str) -> &'static str {
    if ip.contains('/') { "cidr" } else { "ip" }
}

/// `4h`, `30m`, `1h30m`, `90s`, `2d`, `1w`: whole numbers with a unit each, adding up to more
/// than nothing and at most 366 days.
fn duration(text: &str) -> Result<(), &'static str> {
    match clock::parse_duration(text)? {
        s if s > MAX_DURATION_SECONDS => Err("must be at most 366 days"),
        _ => Ok(()),
    }
}

/// A client id with something after an optional `client:`.
fn client_id(text: &str) -> Result<(), &'static str> {
    if text.trim_start_matches(CLIENT_PREFIX).is_empty() {
        Err("must be an API client id")
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(action_type: &str, json: &str) -> Result<Params, Vec<(String, String)>> {
        let map: Map<String, Value> = serde_json::from_str(json).unwrap();
        Params::parse(action_type, &map)
            .map_err(|errors| errors.into_iter().map(|e| (e.field, e.message)).collect())
    }

    fn fields(action_type: &str, json: &str) -> Vec<String> {
        match parse(action_type, json) {
            Ok(_) => vec![],
            Err(errors) => errors.into_iter().map(|(f, _)| f).collect(),
        }
    }

    #[test]
    fn params_are_checked_per_type_and_name_their_field() {
        assert_eq!(fields("block_ip", r#"{"ip": "10.0.0.1"}"#), Vec::<String>::new());
        assert_eq!(fields("block_ip", r#"{}"#), ["params.ip"]);
        assert_eq!(fields("block_ip", r#"{"ip": "nope"}"#), ["params.ip"]);
        assert_eq!(fields("block_ip", r#"{"ip": 7}"#), ["params.ip"]);
        assert_eq!(fields("block_ip", r#"{"ip": "10.0.0.1", "port": 22}"#), ["params.port"]);
        assert_eq!(
            fields("block_ip", r#"{"ip": "10.0.0.1", "severity": "dire", "duration": "4x"}"#),
            ["params.duration", "params.severity"]
        );
        assert_eq!(
            fields("block_ip", r#"{"ip": "10.0.0.1", "duration": "4h", "duration_seconds": 60}"#),
            ["params.duration"]
        );
        assert_eq!(fields("block_ip", r#"{"ip": "10.0.0.0/33"}"#), ["params.ip"]);
        assert_eq!(fields("unblock_ip", r#"{"ip": "::1"}"#), Vec::<String>::new());
        assert_eq!(fields("deactivate_client", r#"{"client_id": "a/b"}"#), ["params.client_id"]);
        assert_eq!(fields("activate_client", r#"{"client_id": "client:"}"#), ["params.client_id"]);
        assert_eq!(fields("set_maintenance", r#"{"mode": "off"}"#), ["params.mode"]);
        assert_eq!(fields("set_maintenance", r#"{"mode": "read_only"}"#), Vec::<String>::new());
    }

    #[test]
    fn params_are_stored_canonical() {
        let stored = |t: &str, json: &str| parse(t, json).ok().unwrap().to_json().to_string();
        assert_eq!(stored("block_ip", r#"{"ip": "::ffff:10.0.0.1"}"#), r#"{"ip":"10.0.0.1"}"#);
        assert_eq!(
            stored("block_ip", r#"{"ip": "10.1.2.3/16", "duration": "1h30m"}"#),
            r#"{"duration":"1h30m","ip":"10.1.0.0/16"}"#
        );
        assert_eq!(
            stored("unblock_ip", r#"{"ip": "2001:DB8::1/32"}"#),
            r#"{"ip":"2001:db8::/32"}"#
        );
        assert_eq!(
            stored("deactivate_client", r#"{"client_id": "client:abc"}"#),
            r#"{"client_id":"abc"}"#
        );
    }

    #[test]
    fn cidrs_become_their_network() {
        assert_eq!(canonical("10.9.8.7/0"), "0.0.0.0/0");
        assert_eq!(canonical("10.9.8.7/32"), "10.9.8.7/32");
        assert_eq!(canonical("10.9.8.7/24"), "10.9.8.0/24");
        assert_eq!(canonical("::1/0"), "::/0");
        assert_eq!(canonical("2001:db8::1/128"), "2001:db8::1/128");
        assert_eq!((rule_type("10.0.0.0/8"), rule_type("10.0.0.1")), ("cidr", "ip"));
    }

    #[test]
    fn durations() {
        for good in ["90s", "30m", "4h", "1h30m", "2d", "1d12h", "2w", "366d"] {
            assert_eq!(duration(good), Ok(()), "{good}");
        }
        for bad in ["", "4", "h", "4x", "0s", "1h30", "-1h", "99999999999999999999d", "367d"] {
            assert!(duration(bad).is_err(), "{bad}");
        }
    }
}
