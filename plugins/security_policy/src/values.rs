//! What a rule's value means for its type: addresses and networks in canonical form, the
//! lookup keys of an address (one per prefix length in use), and ban durations (`4h`,
//! `1h30m`, `2d`).

use core::net::IpAddr;

use valhalla_sdk::prelude::*;

/// Rule types.
pub(crate) const RULE_TYPES: [&str; 4] = ["ip", "cidr", "user", "api_key"];
pub(crate) const SEVERITIES: [&str; 4] = ["low", "medium", "high", "critical"];

/// An address in canonical text form (IPv4-mapped IPv6 as IPv4).
pub(crate) fn canonical_ip(text: &str) -> Option<IpAddr> {
    text.trim().parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

/// A network: its address with the host bits cleared, and its prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Net {
    pub addr: IpAddr,
    pub len: u8,
}

impl Net {
    /// `10.1.0.0/16`, `2001:db8::/32`. A bare address is not a CIDR here (use an `ip` rule).
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        let (addr, len) = text.trim().split_once('/').ok_or("a CIDR is `address/prefix`")?;
        let addr: IpAddr = addr.parse().map_err(|_| "the address part is not an IP address")?;
        let len: u8 = len.parse().map_err(|_| "the prefix is not a number")?;
        // an IPv4-mapped network is an IPv4 one
        let (addr, len) = match addr {
            IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() && len >= 96 => {
                (addr.to_canonical(), len - 96)
            }
            _ => (addr, len),
        };
        if len > max_len(addr) {
            return Err(match addr {
                IpAddr::V4(_) => "an IPv4 prefix is 0 to 32",
                IpAddr::V6(_) => "an IPv6 prefix is 0 to 128",
            });
        }
        Ok(Self::of(addr, len))
    }

    /// The network of length `len` that `addr` is in.
    pub fn of(addr: IpAddr, len: u8) -> Self {
        let addr = match addr {
            IpAddr::V4(a) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
                IpAddr::V4((u32::from(a) & mask).into())
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
                IpAddr::V6((u128::from(a) & mask).into())
            }
        };
        Self { addr, len }
    }
}

impl core::fmt::Display for Net {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

pub(crate) fn family(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() { "v4" } else { "v6" }
}

fn max_len(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 32 } else { 128 }
}

/// The longest ban: 366 days.
pub(crate) const MAX_DURATION_SECONDS: i64 = 31_622_400;

/// A ban duration in seconds (`4h`, `1h30m`, `2d`), at most [`MAX_DURATION_SECONDS`].
pub(crate) fn parse_duration(text: &str) -> Result<i64, &'static str> {
    match clock::parse_duration(text)? {
        s if s > MAX_DURATION_SECONDS => Err("must be at most 366 days"),
        s => Ok(s),
    }
}

/// Parse a list of CIDRs or addresses (settings), skipping none: a bad one is an error.
pub(crate) fn parse_nets(entries: &[String]) -> Result<Vec<Net>, String> {
    entries
        .iter()
        .map(|e| match canonical_ip(e) {
            Some(ip) => Ok(Net::of(ip, max_len(ip))),
            None => Net::parse(e).map_err(|m| format!("`{e}`: {m}")),
        })
        .collect()
}

/// Is `ip` in any of `nets`?
pub(crate) fn in_any(ip: IpAddr, nets: &[Net]) -> bool {
    nets.iter().any(|n| family(n.addr) == family(ip) && Net::of(ip, n.len).addr == n.addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_are_stored_as_their_network() {
        assert_eq!(Net::parse("10.1.2.3/16").unwrap().to_string(), "10.1.0.0/16");
        assert_eq!(Net::parse("2001:db8::1/32").unwrap().to_string(), "2001:db8::/32");
        assert_eq!(Net::parse("0.0.0.0/0").unwrap().to_string(), "0.0.0.0/0");
        assert_eq!(Net::parse("::ffff:10.0.0.0/104").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(Net::parse("10.0.0.1/32").unwrap().to_string(), "10.0.0.1/32");
        assert!(Net::parse("10.0.0.0/33").is_err());
        assert!(Net::parse("10.0.0.0").is_err());
        assert!(Net::parse("10.0.0/8").is_err());
        assert!(Net::parse("2001:db8::/129").is_err());
        assert!(Net::parse("10.0.0.0/-1").is_err());
    }

    #[test]
    fn an_address_is_in_the_networks_of_its_prefixes() {
        let ip = canonical_ip("10.1.2.3").unwrap();
        assert_eq!(Net::of(ip, 8).to_string(), "10.0.0.0/8");
        assert_eq!(Net::of(ip, 0).to_string(), "0.0.0.0/0");
        let nets = parse_nets(&["10.0.0.0/8".into(), "::1".into()]).unwrap();
        assert!(in_any(ip, &nets));
        assert!(in_any(canonical_ip("::1").unwrap(), &nets));
        assert!(!in_any(canonical_ip("11.0.0.1").unwrap(), &nets));
        assert!(!in_any(canonical_ip("::2").unwrap(), &nets));
        assert_eq!(canonical_ip("::ffff:1.2.3.4").unwrap().to_string(), "1.2.3.4");
    }

    #[test]
    fn bans_last_at_most_366_days() {
        assert_eq!(parse_duration("4h"), Ok(14_400));
        assert_eq!(parse_duration("366d"), Ok(MAX_DURATION_SECONDS));
        assert!(parse_duration("367d").is_err());
        assert!(parse_duration("4 hours").is_err());
    }
}
