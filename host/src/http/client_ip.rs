//! The client's address: the socket peer, or — only when the peer is one of
//! `server.trusted_proxies` — the right-most untrusted hop of `Forwarded` (RFC 7239) or, without
//! it, `X-Forwarded-For`, as nginx's `real_ip_recursive on` takes it. Everything left of that
//! hop was written by the client and is never believed.

use std::net::IpAddr;

use http::HeaderMap;
use ipnet::IpNet;

/// The proxies whose forwarding headers are believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

/// An entry of `server.trusted_proxies` that is neither a CIDR nor an address.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a CIDR (10.0.0.0/8, fd00::/8) or an IP address")]
pub struct BadProxy(String);

impl TrustedProxies {
    /// Parse config entries: CIDRs, or single addresses (a /32 or /128).
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, BadProxy> {
        entries
            .iter()
            .map(|e| {
                let e = e.as_ref().trim();
                e.parse::<IpAddr>()
                    .map(|ip| IpNet::from(ip.to_canonical()))
                    .or_else(|_| e.parse::<IpNet>().map(|net| net.trunc()))
                    .map_err(|_| BadProxy(e.to_string()))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client address of a request from `peer` with `headers`, in canonical text form
    /// (an IPv4-mapped IPv6 address as IPv4); empty when there is no peer.
    pub fn client_ip(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> String {
        let Some(peer) = peer.map(|p| p.to_canonical()) else {
            return String::new();
        };
        if !self.trusts(peer) {
            return peer.to_string();
        }
        let hops = forwarded_hops(headers);
        let mut client = peer;
        for hop in hops.iter().rev() {
            // a hop a trusted proxy wrote that is no address ends the walk at that proxy
            let Some(ip) = hop else { break };
            client = *ip;
            if !self.trusts(client) {
                break;
            }
        }
        client.to_string()
    }
}

/// The `for=` addresses of every `Forwarded` header, in order; or, with none, the entries of
/// every `X-Forwarded-For` header. `None` for an entry that is not an address (`unknown`, an
/// obfuscated `_node`, garbage).
fn forwarded_hops(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let lines = |name| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
    };
    let forwarded = lines("forwarded");
    if !forwarded.is_empty() {
        return forwarded
            .into_iter()
            .map(|element| {
                element
                    .split(';')
                    .find_map(|pair| {
                        let (k, v) = pair.split_once('=')?;
                        k.trim().eq_ignore_ascii_case("for").then(|| v.trim())
                    })
                    .and_then(node_address)
            })
            .collect();
    }
    lines("x-forwarded-for")
        .into_iter()
        .map(node_address)
        .collect()
}

/// The address of an RFC 7239 node (`192.0.2.1`, `"192.0.2.1:80"`, `"[2001:db8::1]:4711"`) or
/// of an `X-Forwarded-For` entry (which may also carry a port).
fn node_address(node: &str) -> Option<IpAddr> {
    let node = node.trim().trim_matches('"');
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    let host = match node.strip_prefix('[') {
        Some(rest) => rest.split_once(']')?.0,
        None => node.rsplit_once(':')?.0,
    };
    host.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let none = TrustedProxies::default();
        let h = headers(&[("x-forwarded-for", "1.2.3.4"), ("forwarded", "for=5.6.7.8")]);
        assert_eq!(none.client_ip(ip("203.0.113.9"), &h), "203.0.113.9");
        let proxies = TrustedProxies::parse(&["10.0.0.0/8"]).unwrap();
        assert_eq!(proxies.client_ip(ip("203.0.113.9"), &h), "203.0.113.9");
        assert_eq!(proxies.client_ip(None, &h), "");
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let proxies = TrustedProxies::parse(&["10.0.0.0/8", "127.0.0.1"]).unwrap();
        // the client forged 6.6.6.6; the edge proxy appended the address it saw
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.1.2.3")]);
        assert_eq!(proxies.client_ip(ip("127.0.0.1"), &h), "198.51.100.7");
        // several header lines read as one list, in order
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "198.51.100.7:5555"),
        ]);
        assert_eq!(proxies.client_ip(ip("10.0.0.1"), &h), "198.51.100.7");
        // every hop trusted: the left-most
        let h = headers(&[("x-forwarded-for", "10.9.9.9, 10.1.1.1")]);
        assert_eq!(proxies.client_ip(ip("10.0.0.1"), &h), "10.9.9.9");
        // no header: the peer
        assert_eq!(
            proxies.client_ip(ip("10.0.0.1"), &HeaderMap::new()),
            "10.0.0.1"
        );
        // garbage a trusted proxy passed on ends the walk at that proxy
        let h = headers(&[("x-forwarded-for", "198.51.100.7, nonsense, 10.1.1.1")]);
        assert_eq!(proxies.client_ip(ip("10.0.0.1"), &h), "10.1.1.1");
    }

    #[test]
    fn forwarded_wins_over_x_forwarded_for_and_reads_rfc_7239_nodes() {
        let proxies = TrustedProxies::parse(&["10.0.0.0/8"]).unwrap();
        let h = headers(&[
            ("x-forwarded-for", "192.0.2.1"),
            (
                "forwarded",
                r#"for=6.6.6.6, for="[2001:db8:cafe::17]:4711";proto=https, For=10.2.2.2;by=10.0.0.2"#,
            ),
        ]);
        assert_eq!(proxies.client_ip(ip("10.0.0.1"), &h), "2001:db8:cafe::17");
        let h = headers(&[("forwarded", "for=unknown")]);
        assert_eq!(proxies.client_ip(ip("10.0.0.1"), &h), "10.0.0.1");
    }

    #[test]
    fn addresses_are_canonical() {
        let proxies = TrustedProxies::parse(&["::ffff:127.0.0.1"]).unwrap();
        let h = headers(&[("x-forwarded-for", "::ffff:192.0.2.5")]);
        assert_eq!(proxies.client_ip(ip("::ffff:127.0.0.1"), &h), "192.0.2.5");
        assert!(TrustedProxies::parse(&["10.0.0.0/33"]).is_err());
        assert!(TrustedProxies::parse(&["proxy.local"]).is_err());
    }
}
