//! Who is calling, by network address: the key for every per-address budget (Joins and
//! sign-ins per minute, connections, the anonymous posting allowance).
//!
//! The accept loop records each connection's peer address (`PeerAddr`). Behind a reverse
//! proxy every request comes from the proxy, so the client's own address is read from
//! `X-Forwarded-For` or `Forwarded`, but only when the peer is a proxy the operator
//! trusts (`--trusted-proxy`): anyone else could write whatever they like in those headers.
use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;
use ipnet::IpNet;

/// The TCP peer of the connection a request came on, put in its extensions by the accept
/// loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// The address a request is accounted to, put in its extensions by `app` for the handlers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientIp(pub IpAddr);

/// The proxies whose forwarding headers are believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn new(nets: Vec<IpNet>) -> Self {
        TrustedProxies(nets)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's address: the peer's, unless the peer is a trusted proxy; then the
    /// nearest address in the forwarding chain that is not itself a trusted proxy (each
    /// proxy appends the address it got the request from, so the chain is read from the
    /// right, and anything left of the first untrusted hop could be forged by that hop).
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let mut chain = forwarded_chain(headers);
        let mut client = peer;
        while let Some(hop) = chain.pop() {
            client = hop;
            if !self.trusts(hop) {
                break;
            }
        }
        client
    }
}

/// IPv4-mapped IPv6 addresses (a dual-stack socket's view of an IPv4 client) count as
/// the IPv4 address, so one client has one key.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Every address of the forwarding chain, nearest-to-the-client first: `Forwarded`
/// (RFC 7239) when present, else `X-Forwarded-For`. A chain with an entry that is not an
/// address (`unknown`, an obfuscated name) is cut at that entry: addresses left of it
/// cannot be attributed.
fn forwarded_chain(headers: &HeaderMap) -> Vec<IpAddr> {
    let forwarded: Vec<&str> = headers
        .get_all(http::header::FORWARDED)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let entries: Vec<Option<IpAddr>> = if !forwarded.is_empty() {
        forwarded
            .iter()
            .flat_map(|v| v.split(','))
            .map(|element| {
                element.split(';').find_map(|pair| {
                    let (key, value) = pair.trim().split_once('=')?;
                    key.trim()
                        .eq_ignore_ascii_case("for")
                        .then(|| parse_node(value.trim()))
                })?
            })
            .collect()
    } else {
        headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|hop| parse_node(hop.trim()))
            .collect()
    };
    // Keep the trailing run of parseable addresses.
    let cut = entries
        .iter()
        .rposition(Option::is_none)
        .map_or(0, |i| i + 1);
    entries[cut..]
        .iter()
        .flatten()
        .copied()
        .map(canonical)
        .collect()
}

/// `1.2.3.4`, `1.2.3.4:80`, `"[2001:db8::1]:80"`, `2001:db8::1`.
fn parse_node(node: &str) -> Option<IpAddr> {
    let node = node.trim_matches('"');
    if let Ok(ip) = node.parse() {
        return Some(ip);
    }
    if let Ok(sock) = node.parse::<SocketAddr>() {
        return Some(sock.ip());
    }
    let bracketed = node.strip_prefix('[')?;
    bracketed.split_once(']')?.0.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        map
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let proxies = TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap()]);
        let forged = headers(&[("x-forwarded-for", "1.1.1.1")]);
        assert_eq!(proxies.client_ip(ip("8.8.8.8"), &forged), ip("8.8.8.8"));
        assert_eq!(
            TrustedProxies::default().client_ip(ip("127.0.0.1"), &forged),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn behind_trusted_proxies_the_nearest_untrusted_hop_is_the_client() {
        let proxies = TrustedProxies::new(vec![
            "10.0.0.0/8".parse().unwrap(),
            "::1/128".parse().unwrap(),
        ]);
        // The client forged the first entry; 9.9.9.9 is what our proxy saw.
        let xff = headers(&[("x-forwarded-for", "1.1.1.1, 9.9.9.9, 10.0.0.2")]);
        assert_eq!(proxies.client_ip(ip("10.0.0.1"), &xff), ip("9.9.9.9"));
        let fwd = headers(&[(
            "forwarded",
            "for=1.1.1.1, for=\"[2001:db8::7]:4711\";proto=https",
        )]);
        assert_eq!(proxies.client_ip(ip("::1"), &fwd), ip("2001:db8::7"));
        // No header: the proxy itself.
        assert_eq!(
            proxies.client_ip(ip("10.0.0.1"), &HeaderMap::new()),
            ip("10.0.0.1")
        );
        // An unattributable hop stops the walk at the last address right of it.
        let unknown = headers(&[("x-forwarded-for", "1.1.1.1, unknown, 10.0.0.3")]);
        assert_eq!(proxies.client_ip(ip("10.0.0.1"), &unknown), ip("10.0.0.3"));
    }

    #[test]
    fn mapped_ipv4_is_the_ipv4_address() {
        let proxies = TrustedProxies::new(vec!["127.0.0.0/8".parse().unwrap()]);
        let xff = headers(&[("x-forwarded-for", "::ffff:5.6.7.8")]);
        assert_eq!(
            proxies.client_ip(ip("::ffff:127.0.0.1"), &xff),
            ip("5.6.7.8")
        );
    }
}
