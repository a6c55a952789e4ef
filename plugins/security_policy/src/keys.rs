//! The index's lookup keys (`ip:1.2.3.4`, `net:v4:16:10.1.0.0`, `user:alice`,
//! `api_key:<client>`): a rule is stored under its key, and a request looks up every key its
//! address and principal can have. The guard writes one per prefix length in use on every
//! request, so IPv4 keys are written digit by digit rather than through `core::fmt`, whose
//! machinery was a third of the guard's time in the pack.

use core::fmt::Write as _;
use core::net::IpAddr;

use valhalla_sdk::prelude::*;

use crate::values::Net;

/// The lookup key of a rule (stored with it, so the database can answer the same question).
pub(crate) fn rule_key(rule_type: &str, value: &str) -> String {
    match (rule_type, Net::parse(value)) {
        ("cidr", Ok(net)) => net_key(net),
        _ => [rule_type, ":", value].concat(),
    }
}

/// `net:v4:16:10.1.0.0`.
pub(crate) fn net_key(net: Net) -> String {
    let mut key = String::with_capacity(24);
    key.push_str(if net.addr.is_ipv4() { "net:v4:" } else { "net:v6:" });
    push_u8(&mut key, net.len);
    key.push(':');
    push_ip(&mut key, net.addr);
    key
}

/// Every key a request from `ip` as `principal` can match, given the prefix lengths in use
/// per family, each after `prefix` (the index generation's, or none for the database).
pub(crate) fn request_keys(
    prefix: &str,
    lens: (&[u8], &[u8]),
    ip: Option<IpAddr>,
    principal: Option<&str>,
) -> Vec<String> {
    let mut keys = Vec::new();
    let start = |kind: &str| {
        let mut key = String::with_capacity(prefix.len() + 48);
        key.push_str(prefix);
        key.push_str(kind);
        key
    };
    if let Some(ip) = ip {
        let mut key = start("ip:");
        push_ip(&mut key, ip);
        keys.push(key);
        let (lens, kind) = match ip {
            IpAddr::V4(_) => (lens.0, "net:v4:"),
            IpAddr::V6(_) => (lens.1, "net:v6:"),
        };
        for &len in lens {
            let mut key = start(kind);
            push_u8(&mut key, len);
            key.push(':');
            push_ip(&mut key, Net::of(ip, len).addr);
            keys.push(key);
        }
    }
    if let Some(id) = principal {
        let mut key = start("user:");
        key.push_str(id);
        keys.push(key);
        if let Some(client) = id.strip_prefix("client:") {
            let mut key = start("api_key:");
            key.push_str(client);
            keys.push(key);
        }
    }
    keys
}

/// An address as `Display` writes it (IPv4 by hand, IPv6 through `core::fmt`).
fn push_ip(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(a) => {
            for (i, octet) in a.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                push_u8(out, octet);
            }
        }
        IpAddr::V6(a) => {
            // writing into a String cannot fail
            let _ = write!(out, "{a}");
        }
    }
}

/// A byte in decimal, no leading zeros.
fn push_u8(out: &mut String, n: u8) {
    if n >= 100 {
        out.push(char::from(b'0' + n / 100));
    }
    if n >= 10 {
        out.push(char::from(b'0' + n / 10 % 10));
    }
    out.push(char::from(b'0' + n % 10));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values::canonical_ip;

    #[test]
    fn rules_and_requests_meet_on_the_same_keys() {
        assert_eq!(rule_key("ip", "10.1.2.3"), "ip:10.1.2.3");
        assert_eq!(rule_key("cidr", "10.1.0.0/16"), "net:v4:16:10.1.0.0");
        assert_eq!(rule_key("cidr", "2001:db8::/32"), "net:v6:32:2001:db8::");
        assert_eq!(rule_key("user", "alice"), "user:alice");
        assert_eq!(rule_key("api_key", "c-1"), "api_key:c-1");
        let lens: (&[u8], &[u8]) = (&[8, 16], &[32]);
        let keys = request_keys("", lens, canonical_ip("10.1.2.3"), Some("client:c-1"));
        assert_eq!(
            keys,
            [
                "ip:10.1.2.3",
                "net:v4:8:10.0.0.0",
                "net:v4:16:10.1.0.0",
                "user:client:c-1",
                "api_key:c-1"
            ]
        );
        let keys = request_keys("bl:3:", lens, canonical_ip("2001:db8:1::5"), None);
        assert_eq!(keys, ["bl:3:ip:2001:db8:1::5", "bl:3:net:v6:32:2001:db8::"]);
    }

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        for n in [0u32, 1, 9, 10, 99, 100, 199, 255, 256, 0x0a00_0001, 0xc612_ff09, u32::MAX] {
            let ip = IpAddr::V4(n.into());
            let mut out = String::new();
            push_ip(&mut out, ip);
            assert_eq!(out, ip.to_string());
        }
        for len in 0..=32u8 {
            let net = Net::of(IpAddr::V4(0xc612_abcd.into()), len);
            assert_eq!(net_key(net), format!("net:v4:{len}:{}", net.addr));
        }
    }
}
